// TCP socket operations over the Linux socket API.
#include "net/socket.h"

#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <array>
#include <cerrno>
#include <climits>
#include <optional>

#include "holdfast/error.h"

namespace holdfast::net {
namespace {

std::error_code last_error() { return {errno, std::system_category()}; }

Result<void> set_int(int fd, int level, int name, int value, NetOp op) {
  if (::setsockopt(fd, level, name, &value, sizeof value) != 0) {
    return fail(make_net_error(op, errno));
  }
  return {};
}

// One setsockopt() of apply_socket_options(), with the bit that names it (SocketOptionBit).
struct PlannedOption {
  int level = 0;
  int name = 0;
  int value = 0;
  NetOp op = NetOp::so_keepalive;
  std::uint32_t bit = 0;
};

// The plain options `opts` asks for, in the order apply_socket_options() documents.
struct OptionPlan {
  std::array<PlannedOption, 10> items{};
  std::size_t size = 0;

  void add(int level, int name, int value, NetOp op, std::uint32_t bit) {
    items[size++] = PlannedOption{level, name, value, op, bit};
  }
  [[nodiscard]] std::span<const PlannedOption> options() const { return {items.data(), size}; }
};

OptionPlan plan_of(const SocketOptions& opts) {
  OptionPlan plan;
  plan.add(SOL_SOCKET, SO_KEEPALIVE, opts.keepalive ? 1 : 0, NetOp::so_keepalive, kOptKeepalive);
  if (opts.keepalive) {
    plan.add(IPPROTO_TCP, TCP_KEEPIDLE, static_cast<int>(opts.keepalive_idle.count()),
             NetOp::tcp_keepidle, kOptKeepIdle);
    plan.add(IPPROTO_TCP, TCP_KEEPINTVL, static_cast<int>(opts.keepalive_interval.count()),
             NetOp::tcp_keepintvl, kOptKeepInterval);
    plan.add(IPPROTO_TCP, TCP_KEEPCNT, opts.keepalive_count, NetOp::tcp_keepcnt, kOptKeepCount);
  }
  if (const auto user_timeout = opts.effective_user_timeout(); user_timeout.count() > 0) {
    const auto ms = std::min<std::int64_t>(user_timeout.count(), INT_MAX);
    plan.add(IPPROTO_TCP, TCP_USER_TIMEOUT, static_cast<int>(ms), NetOp::tcp_user_timeout,
             kOptUserTimeout);
  }
  plan.add(IPPROTO_TCP, TCP_NODELAY, opts.no_delay ? 1 : 0, NetOp::tcp_nodelay, kOptNoDelay);
  if (opts.send_buffer > 0) {
    plan.add(SOL_SOCKET, SO_SNDBUF, opts.send_buffer, NetOp::so_sndbuf, kOptSendBuffer);
  }
  if (opts.receive_buffer > 0) {
    plan.add(SOL_SOCKET, SO_RCVBUF, opts.receive_buffer, NetOp::so_rcvbuf, kOptReceiveBuffer);
  }
  if (opts.mark) {
    plan.add(SOL_SOCKET, SO_MARK, static_cast<int>(*opts.mark), NetOp::so_mark, kOptMark);
  }
  if (opts.priority) {
    plan.add(SOL_SOCKET, SO_PRIORITY, *opts.priority, NetOp::so_priority, kOptPriority);
  }
  return plan;
}

Result<void> apply_plan(int fd, const OptionPlan& plan, std::uint32_t skip) {
  for (const PlannedOption& o : plan.options()) {
    if ((o.bit & skip) == 0) {
      HOLDFAST_TRY(set_int(fd, o.level, o.name, o.value, o.op));
    }
  }
  return {};
}

std::optional<int> get_int(int fd, int level, int name) {
  int value = 0;
  socklen_t len = sizeof value;
  if (::getsockopt(fd, level, name, &value, &len) != 0) {
    return std::nullopt;
  }
  return value;
}

Result<void> apply_bind_address(int fd, const std::string& bind_address) {
  auto addr = SocketAddress::parse(bind_address, 0);
  if (!addr) {
    return fail(make_net_error(NetOp::bind_address, EINVAL));
  }
  // Defer the choice of the local port to connect(), so that many connections from one bound IP
  // to different destinations can share ports (without it bind() reserves a port per socket).
  const int one = 1;
  ::setsockopt(fd, IPPROTO_IP, IP_BIND_ADDRESS_NO_PORT, &one, sizeof one);  // best effort
  if (::bind(fd, addr->data(), addr->size()) != 0) {
    // A family mismatch (IPv4 bind_address for an IPv6 socket) is EINVAL or EAFNOSUPPORT here.
    return fail(make_net_error(NetOp::bind, errno));
  }
  return {};
}

Result<SocketAddress> name_of(int fd, bool peer) {
  sockaddr_storage storage{};
  socklen_t len = sizeof storage;
  auto* addr = reinterpret_cast<sockaddr*>(&storage);
  const int rc = peer ? ::getpeername(fd, addr, &len) : ::getsockname(fd, addr, &len);
  if (rc != 0) {
    return fail(last_error());
  }
  return SocketAddress::from_sockaddr(addr, len);
}

}  // namespace

bool is_would_block(std::error_code ec) {
  // The common case without a virtual call: this runs after every drained read and write.
  if (ec.category() == std::system_category()) {
    return ec.value() == EAGAIN || ec.value() == EWOULDBLOCK;
  }
  return ec == std::errc::resource_unavailable_try_again || ec == std::errc::operation_would_block;
}

Result<Fd> open_tcp_socket(int family) {
  const int fd = ::socket(family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, IPPROTO_TCP);
  if (fd < 0) {
    return fail(make_net_error(NetOp::socket, errno));
  }
  return Fd(fd);
}

Result<void> apply_socket_options(int fd, const SocketOptions& opts, SocketRole role) {
  return apply_socket_options_except(fd, opts, role, 0);
}

Result<void> apply_socket_options_except(int fd, const SocketOptions& opts, SocketRole role,
                                         std::uint32_t skip) {
  HOLDFAST_TRY(apply_plan(fd, plan_of(opts), skip));
  if (role == SocketRole::client_connect && !opts.bind_address.empty()) {
    HOLDFAST_TRY(apply_bind_address(fd, opts.bind_address));
  }
  if (opts.on_socket) {
    HOLDFAST_TRY(opts.on_socket(fd, role));
  }
  return {};
}

Result<void> apply_inheritable_options(int listen_fd, const SocketOptions& opts) {
  return apply_plan(listen_fd, plan_of(opts), 0);
}

std::uint32_t inherited_options(int listen_fd, int accepted, const SocketOptions& opts) {
  std::uint32_t same = 0;
  const OptionPlan plan = plan_of(opts);  // options() is a view into it
  for (const PlannedOption& o : plan.options()) {
    const auto on_listener = get_int(listen_fd, o.level, o.name);
    if (on_listener && on_listener == get_int(accepted, o.level, o.name)) {
      same |= o.bit;
    }
  }
  return same;
}

Result<void> start_connect(int fd, const SocketAddress& to) {
  if (::connect(fd, to.data(), to.size()) == 0) {
    return {};
  }
  // EINTR on a non-blocking connect: the attempt continues in the background, like EINPROGRESS.
  if (errno == EINPROGRESS || errno == EINTR) {
    return {};
  }
  return fail(last_error());
}

std::error_code finish_connect(int fd) {
  int err = 0;
  socklen_t len = sizeof err;
  if (::getsockopt(fd, SOL_SOCKET, SO_ERROR, &err, &len) != 0) {
    return last_error();
  }
  return err == 0 ? std::error_code{} : std::error_code{err, std::system_category()};
}

Result<Fd> listen_tcp(const SocketAddress& addr, const ListenOptions& listen_opts,
                      const SocketOptions& socket_opts) {
  auto fd = open_tcp_socket(addr.family());
  if (!fd) {
    return fd;
  }
  HOLDFAST_TRY(set_int(fd->get(), SOL_SOCKET, SO_REUSEADDR, 1, NetOp::so_reuseaddr));
  if (listen_opts.reuse_port) {
    HOLDFAST_TRY(set_int(fd->get(), SOL_SOCKET, SO_REUSEPORT, 1, NetOp::so_reuseport));
  }
  HOLDFAST_TRY(apply_socket_options(fd->get(), socket_opts, SocketRole::server_listen));
  if (::bind(fd->get(), addr.data(), addr.size()) != 0) {
    return fail(make_net_error(NetOp::bind, errno));
  }
  if (::listen(fd->get(), listen_opts.backlog) != 0) {
    return fail(make_net_error(NetOp::listen, errno));
  }
  return fd;
}

Result<SocketAddress> local_address(int fd) { return name_of(fd, false); }

Result<SocketAddress> peer_address(int fd) { return name_of(fd, true); }

Result<Fd> accept_connection(int listen_fd, SocketAddress* peer) {
  sockaddr_storage storage{};
  socklen_t len = sizeof storage;
  int fd = -1;
  do {
    fd = ::accept4(listen_fd, reinterpret_cast<sockaddr*>(&storage), &len,
                   SOCK_NONBLOCK | SOCK_CLOEXEC);
  } while (fd < 0 && errno == EINTR);
  if (fd < 0) {
    return fail(last_error());
  }
  if (peer != nullptr) {
    auto addr = SocketAddress::from_sockaddr(reinterpret_cast<const sockaddr*>(&storage), len);
    *peer = addr ? *addr : SocketAddress{};
  }
  return Fd(fd);
}

Result<std::size_t> read_some(int fd, std::span<std::uint8_t> out) {
  ssize_t n = 0;
  do {
    n = ::read(fd, out.data(), out.size());
  } while (n < 0 && errno == EINTR);
  if (n < 0) {
    return fail(last_error());
  }
  return static_cast<std::size_t>(n);
}

Result<std::size_t> write_some(int fd, std::span<const std::uint8_t> data) {
  ssize_t n = 0;
  do {
    n = ::send(fd, data.data(), data.size(), MSG_NOSIGNAL);
    if (n < 0 && errno == ENOTSOCK) {
      n = ::write(fd, data.data(), data.size());
    }
  } while (n < 0 && errno == EINTR);
  if (n < 0) {
    return fail(last_error());
  }
  return static_cast<std::size_t>(n);
}

Result<std::size_t> writev_some(int fd, std::span<const iovec> parts) {
  msghdr msg{};
  msg.msg_iov = const_cast<iovec*>(parts.data());  // sendmsg does not write through it
  msg.msg_iovlen = std::min<std::size_t>(parts.size(), IOV_MAX);
  ssize_t n = 0;
  do {
    n = ::sendmsg(fd, &msg, MSG_NOSIGNAL);
    if (n < 0 && errno == ENOTSOCK) {
      n = ::writev(fd, msg.msg_iov, static_cast<int>(msg.msg_iovlen));
    }
  } while (n < 0 && errno == EINTR);
  if (n < 0) {
    return fail(last_error());
  }
  return static_cast<std::size_t>(n);
}

std::error_code classify_socket_error(int fd, int err) {
  const std::error_code system{err, std::system_category()};
  if (err != ETIMEDOUT) {
    return system;
  }
  tcp_info info{};
  socklen_t len = sizeof info;
  if (::getsockopt(fd, IPPROTO_TCP, TCP_INFO, &info, &len) != 0) {
    return system;
  }
  const bool data_unacked =
      info.tcpi_unacked > 0 || info.tcpi_retransmits > 0 || info.tcpi_backoff > 0;
  if (data_unacked) {
    int user_timeout = 0;
    socklen_t ulen = sizeof user_timeout;
    const bool has_user_timeout =
        ::getsockopt(fd, IPPROTO_TCP, TCP_USER_TIMEOUT, &user_timeout, &ulen) == 0 &&
        user_timeout > 0;
    return has_user_timeout ? make_error_code(Errc::user_timeout) : system;
  }
  if (info.tcpi_probes > 0) {
    return make_error_code(Errc::keepalive_lost);
  }
  return system;
}

}  // namespace holdfast::net
