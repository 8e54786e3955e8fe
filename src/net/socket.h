// TCP socket operations: create, options, connect, listen, accept, read and write, error mapping.
#pragma once

#include <sys/uio.h>

#include <cstddef>
#include <cstdint>
#include <span>
#include <system_error>

#include "holdfast/result.h"
#include "holdfast/socket_options.h"
#include "net/fd.h"
#include "net/net_error.h"
#include "net/socket_address.h"

namespace holdfast::net {

/// True for EAGAIN / EWOULDBLOCK (of any category that maps to them): retry when ready.
bool is_would_block(std::error_code ec);

/// A non-blocking, close-on-exec TCP socket of `family` (AF_INET or AF_INET6).
/// Errors: net category NetOp::socket (EMFILE, EAFNOSUPPORT, ...).
Result<Fd> open_tcp_socket(int family);

/// Applies `opts` to `fd`, in this order: SO_KEEPALIVE (+ TCP_KEEPIDLE/KEEPINTVL/KEEPCNT when on),
/// TCP_USER_TIMEOUT (opts.effective_user_timeout(), skipped when 0), TCP_NODELAY, SO_SNDBUF and
/// SO_RCVBUF (when > 0), SO_MARK and SO_PRIORITY (when set), then for SocketRole::client_connect
/// only a bind() to opts.bind_address (port 0, with IP_BIND_ADDRESS_NO_PORT so the port is picked
/// at connect time), and last the opts.on_socket hook. Stops at the first failure. Errors: net
/// category naming the option ("setsockopt(TCP_KEEPIDLE) failed: Invalid argument"), or the hook's
/// own error unchanged.
Result<void> apply_socket_options(int fd, const SocketOptions& opts, SocketRole role);

/// The plain setsockopt() options of apply_socket_options() (all but bind_address and the hook),
/// one bit each, for apply_socket_options_except() and inherited_options().
inline constexpr std::uint32_t kOptKeepalive = 1u << 0;      ///< SO_KEEPALIVE
inline constexpr std::uint32_t kOptKeepIdle = 1u << 1;       ///< TCP_KEEPIDLE
inline constexpr std::uint32_t kOptKeepInterval = 1u << 2;   ///< TCP_KEEPINTVL
inline constexpr std::uint32_t kOptKeepCount = 1u << 3;      ///< TCP_KEEPCNT
inline constexpr std::uint32_t kOptUserTimeout = 1u << 4;    ///< TCP_USER_TIMEOUT
inline constexpr std::uint32_t kOptNoDelay = 1u << 5;        ///< TCP_NODELAY
inline constexpr std::uint32_t kOptSendBuffer = 1u << 6;     ///< SO_SNDBUF
inline constexpr std::uint32_t kOptReceiveBuffer = 1u << 7;  ///< SO_RCVBUF
inline constexpr std::uint32_t kOptMark = 1u << 8;           ///< SO_MARK
inline constexpr std::uint32_t kOptPriority = 1u << 9;       ///< SO_PRIORITY

/// apply_socket_options() without the setsockopt() calls whose bits are in `skip` (options the
/// socket already has, e.g. inherited from its listening socket); the bind and the hook still run.
Result<void> apply_socket_options_except(int fd, const SocketOptions& opts, SocketRole role,
                                         std::uint32_t skip);

/// Sets on the listening socket `listen_fd` the plain options of `opts` (as apply_socket_options()
/// would, without bind and without the hook), so that the sockets accepted from it inherit them.
/// Errors: as apply_socket_options().
Result<void> apply_inheritable_options(int listen_fd, const SocketOptions& opts);

/// The bits of the plain options of `opts` that `accepted` reads (getsockopt) exactly as
/// `listen_fd` does: what an accepted socket inherited. On Linux 6.x all but SO_PRIORITY are
/// inherited; the answer is read, not assumed, so any kernel is handled. A failed read counts as
/// not inherited.
std::uint32_t inherited_options(int listen_fd, int accepted, const SocketOptions& opts);

/// Starts a non-blocking connect. Success means connected or in progress (EINPROGRESS): wait for
/// writable, then call finish_connect(). Errors: the system's (ENETUNREACH, ...).
Result<void> start_connect(int fd, const SocketAddress& to);

/// The outcome of a connect once the socket is writable (SO_ERROR): {} when connected, else the
/// system error (ECONNREFUSED, ETIMEDOUT, ...).
std::error_code finish_connect(int fd);

/// Options of listen_tcp().
struct ListenOptions {
  int backlog = 4096;       ///< listen() backlog (the kernel caps it at net.core.somaxconn)
  bool reuse_port = false;  ///< SO_REUSEPORT: one listener per loop on the same port
};

/// A listening non-blocking socket bound to `addr` (port 0 picks one; see local_address()).
/// SO_REUSEADDR is always set; `socket_opts` are applied with SocketRole::server_listen before
/// bind() (accepted sockets inherit most of them on Linux: Acceptor sets only the others again).
/// Errors: net category (bind() failed: Address already in use, ...) or the hook's.
Result<Fd> listen_tcp(const SocketAddress& addr, const ListenOptions& listen_opts,
                      const SocketOptions& socket_opts);

/// The local address of a socket (getsockname). Errors: the system's.
Result<SocketAddress> local_address(int fd);
/// The peer address of a connected socket (getpeername). Errors: the system's (ENOTCONN, ...).
Result<SocketAddress> peer_address(int fd);

/// Accepts one connection as a non-blocking, close-on-exec socket; fills `*peer` when non-null.
/// Errors: the system's; would-block (is_would_block()) when none is pending.
Result<Fd> accept_connection(int listen_fd, SocketAddress* peer);

/// Reads up to out.size() bytes. 0 means end of stream. Errors: the system's, would-block included.
Result<std::size_t> read_some(int fd, std::span<std::uint8_t> out);
/// Writes some of `data` (send with MSG_NOSIGNAL: a closed peer gives EPIPE, never SIGPIPE; falls
/// back to write() for non-sockets such as pipes). Errors: the system's, would-block included.
Result<std::size_t> write_some(int fd, std::span<const std::uint8_t> data);
/// Gathers up to IOV_MAX parts into one sendmsg (MSG_NOSIGNAL; writev() for non-sockets).
Result<std::size_t> writev_some(int fd, std::span<const iovec> parts);

/// Maps the error `err` (an errno, e.g. from SO_ERROR or a failed read) of a connection on `fd` to
/// the clearest code. Only ETIMEDOUT is refined, with TCP_INFO read from the (still open) socket:
///  - unacknowledged data (tcpi_unacked > 0, or tcpi_retransmits/tcpi_backoff > 0) and a
///    TCP_USER_TIMEOUT > 0 on the socket -> Errc::user_timeout (sent data was never acknowledged);
///  - otherwise keep-alive probes sent (tcpi_probes > 0) -> Errc::keepalive_lost (Linux only sends
///    keep-alive probes while nothing is in flight; zero-window probes count too, which also means
///    the peer stopped answering);
///  - otherwise, and for every other errno, the system error itself.
/// Heuristic limits: after the kernel gives up it purges the send queue, so tcpi_unacked may read
/// 0; tcpi_retransmits (kept) is then what tells data timeouts apart.
std::error_code classify_socket_error(int fd, int err);

}  // namespace holdfast::net
