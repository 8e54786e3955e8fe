// The net error category: a failed system call named together with its errno.
#pragma once

#include <system_error>

namespace holdfast::net {

/// The operation a net-category error names. Its message() reads "<operation> failed: <strerror>",
/// e.g. "setsockopt(TCP_KEEPIDLE) failed: Invalid argument".
enum class NetOp {
  so_keepalive = 1,
  tcp_keepidle,
  tcp_keepintvl,
  tcp_keepcnt,
  tcp_user_timeout,
  tcp_nodelay,
  so_sndbuf,
  so_rcvbuf,
  so_mark,
  so_priority,
  so_reuseaddr,
  so_reuseport,
  bind_address,  ///< SocketOptions::bind_address is not a numeric IP of the socket's family
  bind,
  listen,
  socket,
};

/// The category "net". Its codes compare equal to the std::errc of their errno
/// (`ec == std::errc::address_in_use` works).
const std::error_category& net_category() noexcept;

/// A net-category code for `op` failing with `err` (an errno value).
std::error_code make_net_error(NetOp op, int err) noexcept;

/// The errno carried by a net-category code (0 for other categories).
int net_errno(std::error_code ec) noexcept;

}  // namespace holdfast::net
