// SocketAddress: strict numeric parsing (inet_pton, so no "127.1" shorthand) and formatting.
#include "net/socket_address.h"

#include <arpa/inet.h>
#include <net/if.h>
#include <netinet/in.h>

#include <charconv>
#include <cstring>

#include "holdfast/error.h"

namespace holdfast::net {
namespace {

const sockaddr_in* as_v4(const sockaddr_storage& s) {
  return reinterpret_cast<const sockaddr_in*>(&s);
}
const sockaddr_in6* as_v6(const sockaddr_storage& s) {
  return reinterpret_cast<const sockaddr_in6*>(&s);
}

// "%eth0" or "%2": an interface name or number (RFC 4007 §11).
bool parse_scope(std::string_view scope, std::uint32_t* out) {
  if (scope.empty()) {
    return false;
  }
  const auto* end = scope.data() + scope.size();
  auto [ptr, ec] = std::from_chars(scope.data(), end, *out);
  if (ec == std::errc{} && ptr == end) {
    return true;
  }
  const std::string name(scope);
  *out = ::if_nametoindex(name.c_str());
  return *out != 0;
}

}  // namespace

Result<SocketAddress> SocketAddress::parse(std::string_view ip, std::uint16_t port) {
  if (ip.size() >= 2 && ip.front() == '[' && ip.back() == ']') {
    ip = ip.substr(1, ip.size() - 2);
  }
  if (ip.empty() || ip.size() > INET6_ADDRSTRLEN + IF_NAMESIZE) {
    return fail(Errc::invalid_argument);
  }
  SocketAddress out;
  std::string text(ip);
  sockaddr_in v4{};
  if (::inet_pton(AF_INET, text.c_str(), &v4.sin_addr) == 1) {
    v4.sin_family = AF_INET;
    v4.sin_port = htons(port);
    std::memcpy(&out.storage_, &v4, sizeof v4);
    out.size_ = sizeof v4;
    return out;
  }
  sockaddr_in6 v6{};
  std::uint32_t scope = 0;
  if (const auto percent = text.find('%'); percent != std::string::npos) {
    if (!parse_scope(std::string_view(text).substr(percent + 1), &scope)) {
      return fail(Errc::invalid_argument);
    }
    text.resize(percent);
  }
  if (::inet_pton(AF_INET6, text.c_str(), &v6.sin6_addr) != 1) {
    return fail(Errc::invalid_argument);
  }
  v6.sin6_family = AF_INET6;
  v6.sin6_port = htons(port);
  v6.sin6_scope_id = scope;
  std::memcpy(&out.storage_, &v6, sizeof v6);
  out.size_ = sizeof v6;
  return out;
}

Result<SocketAddress> SocketAddress::parse_host_port(std::string_view text) {
  const auto colon = text.rfind(':');
  if (colon == std::string_view::npos || colon + 1 == text.size()) {
    return fail(Errc::invalid_argument);
  }
  const std::string_view host = text.substr(0, colon);
  const std::string_view port_text = text.substr(colon + 1);
  // An IPv6 literal must be bracketed, else "::1:80" is ambiguous.
  if (host.find(':') != std::string_view::npos && (host.empty() || host.front() != '[')) {
    return fail(Errc::invalid_argument);
  }
  unsigned port = 0;
  const auto* end = port_text.data() + port_text.size();
  auto [ptr, ec] = std::from_chars(port_text.data(), end, port);
  if (ec != std::errc{} || ptr != end || port > 65535) {
    return fail(Errc::invalid_argument);
  }
  return parse(host, static_cast<std::uint16_t>(port));
}

Result<SocketAddress> SocketAddress::from_sockaddr(const sockaddr* addr, socklen_t len) {
  SocketAddress out;
  if (addr == nullptr) {
    return fail(Errc::invalid_argument);
  }
  if ((addr->sa_family == AF_INET && len >= sizeof(sockaddr_in)) ||
      (addr->sa_family == AF_INET6 && len >= sizeof(sockaddr_in6))) {
    out.size_ = addr->sa_family == AF_INET ? sizeof(sockaddr_in) : sizeof(sockaddr_in6);
    std::memcpy(&out.storage_, addr, out.size_);
    return out;
  }
  return fail(Errc::invalid_argument);
}

SocketAddress SocketAddress::loopback_v4(std::uint16_t port) {
  sockaddr_in v4{};
  v4.sin_family = AF_INET;
  v4.sin_port = htons(port);
  v4.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  return *from_sockaddr(reinterpret_cast<const sockaddr*>(&v4), sizeof v4);
}

std::uint16_t SocketAddress::port() const {
  switch (family()) {
    case AF_INET: return ntohs(as_v4(storage_)->sin_port);
    case AF_INET6: return ntohs(as_v6(storage_)->sin6_port);
    default: return 0;
  }
}

void SocketAddress::set_port(std::uint16_t port) {
  if (family() == AF_INET) {
    reinterpret_cast<sockaddr_in*>(&storage_)->sin_port = htons(port);
  } else if (family() == AF_INET6) {
    reinterpret_cast<sockaddr_in6*>(&storage_)->sin6_port = htons(port);
  }
}

std::string SocketAddress::ip_string() const {
  char buf[INET6_ADDRSTRLEN] = {};
  if (family() == AF_INET) {
    ::inet_ntop(AF_INET, &as_v4(storage_)->sin_addr, buf, sizeof buf);
    return buf;
  }
  if (family() == AF_INET6) {
    ::inet_ntop(AF_INET6, &as_v6(storage_)->sin6_addr, buf, sizeof buf);
    std::string out = buf;
    if (as_v6(storage_)->sin6_scope_id != 0) {
      out += '%';
      out += std::to_string(as_v6(storage_)->sin6_scope_id);
    }
    return out;
  }
  return {};
}

std::string SocketAddress::to_string() const {
  if (family() == AF_INET) {
    return ip_string() + ':' + std::to_string(port());
  }
  if (family() == AF_INET6) {
    return '[' + ip_string() + "]:" + std::to_string(port());
  }
  return {};
}

bool SocketAddress::is_loopback() const {
  if (family() == AF_INET) {
    return (ntohl(as_v4(storage_)->sin_addr.s_addr) >> 24) == 127;
  }
  if (family() == AF_INET6) {
    return IN6_IS_ADDR_LOOPBACK(&as_v6(storage_)->sin6_addr);
  }
  return false;
}

bool operator==(const SocketAddress& a, const SocketAddress& b) {
  if (a.family() != b.family() || a.size_ != b.size_) {
    return false;
  }
  if (a.family() == AF_INET) {
    return as_v4(a.storage_)->sin_port == as_v4(b.storage_)->sin_port &&
           as_v4(a.storage_)->sin_addr.s_addr == as_v4(b.storage_)->sin_addr.s_addr;
  }
  if (a.family() == AF_INET6) {
    const auto* x = as_v6(a.storage_);
    const auto* y = as_v6(b.storage_);
    return x->sin6_port == y->sin6_port && x->sin6_scope_id == y->sin6_scope_id &&
           std::memcmp(&x->sin6_addr, &y->sin6_addr, sizeof x->sin6_addr) == 0;
  }
  return true;
}

}  // namespace holdfast::net
