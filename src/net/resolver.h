// Resolver: asynchronous host name resolution with c-ares, driven by an event Loop.
#pragma once

#include <chrono>
#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <unordered_map>
#include <vector>

#include "event/loop.h"
#include "event/timer_wheel.h"
#include "holdfast/result.h"
#include "net/socket_address.h"

struct ares_channeldata;  // c-ares' channel (ares_channel), kept out of this header
struct ares_addrinfo;

namespace holdfast::net {

/// Options of a Resolver.
struct ResolverOptions {
  /// Bound on one resolve(): the callback gets Errc::dns_timeout at the latest this long after
  /// resolve(). c-ares gets per-try timeouts that add up to it (it doubles the timeout each try).
  std::chrono::milliseconds timeout{5000};
  int tries = 2;  ///< attempts per name server (>= 1)
  /// DNS servers to ask instead of /etc/resolv.conf's (tests point this at a local fake server).
  std::vector<SocketAddress> servers;
};

/// Resolves host names to addresses without blocking the loop: c-ares' sockets are watched on the
/// Loop and its retransmission timeouts run on a loop Timer. Loop-thread only. /etc/hosts is
/// consulted first (c-ares "files" then "bind" order of /etc/resolv.conf), then DNS.
class Resolver {
 public:
  /// The outcome: addresses with the requested port, IPv4 first then IPv6, no duplicates, never
  /// empty; or Errc::host_not_found (no such name, or no address), Errc::dns_timeout,
  /// Errc::dns_failure (server failure, refused, no reachable server, malformed answer),
  /// Errc::invalid_argument (empty name), Errc::cancelled (the Resolver was destroyed).
  using Callback = std::function<void(Result<std::vector<SocketAddress>>)>;

  /// Creates a c-ares channel for `loop` (which must outlive the Resolver). Initializes c-ares
  /// once per process (thread-safe). Errors: Errc::dns_failure if c-ares cannot start (its
  /// configuration could not be read), Errc::invalid_argument for bad options.
  static Result<std::unique_ptr<Resolver>> create(event::Loop& loop, ResolverOptions options = {});
  /// Cancels pending resolutions: their callbacks run with Errc::cancelled before the destructor
  /// returns (callbacks must not call into this Resolver then).
  ~Resolver();
  Resolver(const Resolver&) = delete;
  Resolver& operator=(const Resolver&) = delete;

  /// Resolves `host` and calls `cb` exactly once, always later from the loop (never before
  /// resolve() returns), even for answers known at once: numeric IPs (no lookup), "localhost" and
  /// "*.localhost" (127.0.0.1 then ::1, RFC 6761 §6.3) and "*.invalid" (host_not_found, RFC 6761
  /// §6.4). A callback may destroy the Resolver.
  void resolve(const std::string& host, std::uint16_t port, Callback cb);

  /// Resolutions started and not yet answered.
  [[nodiscard]] std::size_t pending() const { return pending_; }

 private:
  struct Query;
  class SocketWatch;
  struct Ready {
    Callback cb;
    Result<std::vector<SocketAddress>> result;
  };

  Resolver(event::Loop& loop, ResolverOptions options);
  Result<void> init_channel();
  static void on_sock_state(void* data, int fd, int readable, int writable);
  static void on_addrinfo(void* arg, int status, int timeouts, ::ares_addrinfo* res);
  void process(int fd, std::uint32_t events);
  void reschedule();
  void complete(Callback cb, Result<std::vector<SocketAddress>> result);
  void flush();

  event::Loop& loop_;
  ResolverOptions options_;
  ares_channeldata* channel_ = nullptr;
  event::Timer ares_timer_;  // c-ares' next retransmission/timeout
  std::unordered_map<int, std::unique_ptr<SocketWatch>> watches_;
  std::vector<std::unique_ptr<SocketWatch>> retired_;  // unwatched while possibly on the stack
  std::vector<Ready> ready_;                           // answers waiting for flush()
  bool flush_posted_ = false;
  bool destroying_ = false;
  std::size_t pending_ = 0;
  std::shared_ptr<bool> alive_;  // lets posted flushes notice that the Resolver is gone
};

}  // namespace holdfast::net
