// SocketAddress: an IPv4 or IPv6 address and port (a sockaddr_storage), parsed from numeric text.
#pragma once

#include <sys/socket.h>

#include <cstdint>
#include <string>
#include <string_view>

#include "holdfast/result.h"

namespace holdfast::net {

/// An IPv4 or IPv6 socket address. Default-constructed: empty (family() == AF_UNSPEC). Plain value;
/// copyable; not synchronized.
class SocketAddress {
 public:
  SocketAddress() = default;

  /// Parses a numeric IP ("127.0.0.1", "::1", "[::1]", "fe80::1%eth0") with `port`. Host names
  /// are NOT resolved (see Resolver). Errors: Errc::invalid_argument.
  static Result<SocketAddress> parse(std::string_view ip, std::uint16_t port);
  /// Parses "ip:port" ("127.0.0.1:8080", "[::1]:443"); IPv6 needs brackets. Errors:
  /// Errc::invalid_argument (no port, port > 65535, not a numeric IP).
  static Result<SocketAddress> parse_host_port(std::string_view text);
  /// Copies `len` bytes of a sockaddr of family AF_INET or AF_INET6. Errors:
  /// Errc::invalid_argument.
  static Result<SocketAddress> from_sockaddr(const sockaddr* addr, socklen_t len);
  /// The IPv4 loopback 127.0.0.1 with `port`.
  static SocketAddress loopback_v4(std::uint16_t port);

  /// AF_INET, AF_INET6 or AF_UNSPEC.
  [[nodiscard]] int family() const { return storage_.ss_family; }
  /// The port in host byte order (0 when empty).
  [[nodiscard]] std::uint16_t port() const;
  /// Sets the port (no effect when empty).
  void set_port(std::uint16_t port);
  /// The IP as text without brackets ("::1"), "" when empty.
  [[nodiscard]] std::string ip_string() const;
  /// "127.0.0.1:8080" or "[::1]:443"; "" when empty.
  [[nodiscard]] std::string to_string() const;
  /// True for 127.0.0.0/8 and ::1.
  [[nodiscard]] bool is_loopback() const;
  /// For bind()/connect(): the sockaddr and its length.
  [[nodiscard]] const sockaddr* data() const {
    return reinterpret_cast<const sockaddr*>(&storage_);
  }
  [[nodiscard]] socklen_t size() const { return size_; }

  /// Same family, IP, port (and IPv6 scope).
  friend bool operator==(const SocketAddress& a, const SocketAddress& b);

 private:
  sockaddr_storage storage_{};
  socklen_t size_ = 0;
};

}  // namespace holdfast::net
