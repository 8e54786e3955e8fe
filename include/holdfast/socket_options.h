// Socket options for every client and server socket: keep-alive on by default, every option
// reachable.
#pragma once

#include <chrono>
#include <cstdint>
#include <functional>
#include <optional>
#include <string>

#include "holdfast/result.h"

namespace holdfast {

/// Which end of a connection a socket is, passed to SocketOptions::on_socket.
enum class SocketRole {
  client_connect,  ///< a client socket: called after socket(), before connect()
  server_accept,   ///< a server socket: called right after accept()
  server_listen,   ///< a listening socket: called after socket(), before bind()
};

/// Options applied to each TCP socket holdfast creates or accepts. The defaults make a dead or
/// silently dropped path visible within about 2 minutes (docs/keepalive.md): TCP keep-alive after
/// 30 s idle, a probe every 10 s, 3 unanswered probes end the connection (30 + 3 * 10 = 60 s), and
/// TCP_USER_TIMEOUT = idle + interval * count so unacknowledged data cannot hang for the kernel's
/// 15 minutes either. A live peer that is merely slow to answer is never cut by these: keep-alive
/// probes are answered by the peer's kernel. Copyable; plain data.
struct SocketOptions {
  bool keepalive = true;                        ///< SO_KEEPALIVE
  std::chrono::seconds keepalive_idle{30};      ///< TCP_KEEPIDLE
  std::chrono::seconds keepalive_interval{10};  ///< TCP_KEEPINTVL
  int keepalive_count = 3;                      ///< TCP_KEEPCNT
  /// TCP_USER_TIMEOUT. Unset: derived from keep-alive as idle + interval * count (0 if keep-alive
  /// is off). Set to 0 to keep the kernel's default.
  std::optional<std::chrono::milliseconds> user_timeout;
  bool no_delay = true;               ///< TCP_NODELAY
  int send_buffer = 0;                ///< SO_SNDBUF in bytes; 0 keeps the default
  int receive_buffer = 0;             ///< SO_RCVBUF in bytes; 0 keeps the default
  std::string bind_address;           ///< client: local address to bind, "" = any
  std::optional<std::uint32_t> mark;  ///< SO_MARK (needs CAP_NET_ADMIN)
  std::optional<int> priority;        ///< SO_PRIORITY
  /// Raw hook for any other setsockopt: called with the descriptor (see SocketRole for when).
  /// Returning an error aborts that connection (or listener) with this error. Called on the thread
  /// of the event loop that owns the socket; must not close or keep the descriptor.
  std::function<Result<void>(int fd, SocketRole role)> on_socket;

  /// The TCP_USER_TIMEOUT that will be applied, after the derivation above.
  [[nodiscard]] std::chrono::milliseconds effective_user_timeout() const {
    if (user_timeout) {
      return *user_timeout;
    }
    if (!keepalive) {
      return std::chrono::milliseconds{0};
    }
    return keepalive_idle + keepalive_interval * keepalive_count;
  }
};

}  // namespace holdfast
