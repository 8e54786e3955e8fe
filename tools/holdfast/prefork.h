// `holdfast serve --workers N`: listening sockets bound before fork(), and the supervising parent.
#pragma once

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <functional>
#include <string>
#include <vector>

#include "holdfast/result.h"

namespace holdfast::cli {

/// Listening TCP sockets on one address and one port, all with SO_REUSEPORT: the kernel spreads
/// new connections over them by a hash of the connection's addresses (docs/fork.md).
struct Listeners {
  std::vector<int> fds;    ///< blocking, close-on-exec; owned by whoever holds the struct
  std::uint16_t port = 0;  ///< the port they all listen on
};

/// Binds `n` listeners to `address` (numeric IPv4 or IPv6) and `port`; with port 0 the first one
/// lets the kernel pick and the others bind the port it picked, so every worker shares ONE port.
/// Errors: std::system_category (EADDRINUSE, EADDRNOTAVAIL, EACCES, ...), or
/// Errc::invalid_argument for an address that is not numeric. Nothing stays open on failure.
Result<Listeners> bind_listeners(const std::string& address, std::uint16_t port, std::size_t n);

/// Closes every descriptor in `listeners`.
void close_listeners(Listeners& listeners);

/// The body of one worker process: serves on `listen_fd` (the worker's own listener, `index`
/// 0..n-1) until SIGINT or SIGTERM, calling `ready` once it accepts connections. Returns the
/// worker's exit code.
using WorkerMain =
    std::function<int(std::size_t index, int listen_fd, const std::function<void()>& ready)>;

/// Forks one worker per listener and waits (up to 15 s) until every one of them is ready; then
/// calls `on_ready` once (the caller prints the URL) and supervises until SIGINT or SIGTERM:
/// a worker that dies is reported on stderr and restarted on the same listener, unless it died
/// within 1 s of starting five times in a row (then its listener is closed and the others carry
/// on). SIGINT/SIGTERM are forwarded to every worker, which gets `stop_timeout` to exit before
/// it is killed. The caller must have blocked SIGINT, SIGTERM and SIGCHLD and must have no other
/// threads. Takes ownership of `listeners`. Returns the exit code: 0 after a clean stop; a
/// worker's own code if one failed to start; 1 if every worker was given up or one had to be
/// killed at the end.
int run_workers(Listeners listeners, const WorkerMain& worker,
                const std::function<void()>& on_ready, std::chrono::milliseconds stop_timeout);

}  // namespace holdfast::cli
