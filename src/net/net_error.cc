// The net error category: the value packs the operation (high bits) and the errno (low 16 bits).
#include "net/net_error.h"

#include <string>

namespace holdfast::net {
namespace {

const char* op_name(NetOp op) {
  switch (op) {
    case NetOp::so_keepalive: return "setsockopt(SO_KEEPALIVE)";
    case NetOp::tcp_keepidle: return "setsockopt(TCP_KEEPIDLE)";
    case NetOp::tcp_keepintvl: return "setsockopt(TCP_KEEPINTVL)";
    case NetOp::tcp_keepcnt: return "setsockopt(TCP_KEEPCNT)";
    case NetOp::tcp_user_timeout: return "setsockopt(TCP_USER_TIMEOUT)";
    case NetOp::tcp_nodelay: return "setsockopt(TCP_NODELAY)";
    case NetOp::so_sndbuf: return "setsockopt(SO_SNDBUF)";
    case NetOp::so_rcvbuf: return "setsockopt(SO_RCVBUF)";
    case NetOp::so_mark: return "setsockopt(SO_MARK)";
    case NetOp::so_priority: return "setsockopt(SO_PRIORITY)";
    case NetOp::so_reuseaddr: return "setsockopt(SO_REUSEADDR)";
    case NetOp::so_reuseport: return "setsockopt(SO_REUSEPORT)";
    case NetOp::bind_address: return "parsing bind_address as a numeric IP of the socket's family";
    case NetOp::bind: return "bind()";
    case NetOp::listen: return "listen()";
    case NetOp::socket: return "socket()";
  }
  return "socket operation";
}

class NetCategory final : public std::error_category {
 public:
  const char* name() const noexcept override { return "net"; }

  std::string message(int value) const override {
    const auto op = static_cast<NetOp>(value >> 16);
    const int err = value & 0xffff;
    std::string out = op_name(op);
    out += " failed: ";
    out += std::generic_category().message(err);
    return out;
  }

  std::error_condition default_error_condition(int value) const noexcept override {
    return std::generic_category().default_error_condition(value & 0xffff);
  }
};

}  // namespace

const std::error_category& net_category() noexcept {
  static const NetCategory category;
  return category;
}

std::error_code make_net_error(NetOp op, int err) noexcept {
  return {(static_cast<int>(op) << 16) | (err & 0xffff), net_category()};
}

int net_errno(std::error_code ec) noexcept {
  return ec.category() == net_category() ? (ec.value() & 0xffff) : 0;
}

}  // namespace holdfast::net
