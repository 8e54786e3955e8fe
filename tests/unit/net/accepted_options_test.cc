// Unit tests of the accepted sockets' options: set once on the listener, inherited or set again.
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sys/socket.h>

#include <cerrno>
#include <cstring>
#include <vector>

#include <gtest/gtest.h>

#include "net/acceptor.h"
#include "net/socket.h"
#include "net_test_util.h"

namespace holdfast::net {
namespace {

using testing::run_until;

// SO_KEEPALIVE, TCP_KEEPIDLE, TCP_KEEPINTVL, TCP_KEEPCNT, TCP_USER_TIMEOUT, TCP_NODELAY,
// SO_SNDBUF, SO_RCVBUF and SO_PRIORITY as getsockopt() reads them on `fd`.
std::vector<int> read_options(int fd) {
  static constexpr std::pair<int, int> kOptions[] = {
      {SOL_SOCKET, SO_KEEPALIVE}, {IPPROTO_TCP, TCP_KEEPIDLE},     {IPPROTO_TCP, TCP_KEEPINTVL},
      {IPPROTO_TCP, TCP_KEEPCNT}, {IPPROTO_TCP, TCP_USER_TIMEOUT}, {IPPROTO_TCP, TCP_NODELAY},
      {SOL_SOCKET, SO_SNDBUF},    {SOL_SOCKET, SO_RCVBUF},         {SOL_SOCKET, SO_PRIORITY}};
  std::vector<int> values;
  for (const auto& [level, name] : kOptions) {
    int value = -1;
    socklen_t len = sizeof value;
    EXPECT_EQ(::getsockopt(fd, level, name, &value, &len), 0) << std::strerror(errno);
    values.push_back(value);
  }
  return values;
}

struct Writable final : event::IoHandler {
  bool ready = false;
  void on_io(std::uint32_t events) override { ready = ready || (events & event::kWritable) != 0; }
};

// Options that differ from both the kernel's defaults and SocketOptions' defaults.
SocketOptions unusual_options() {
  SocketOptions opts;
  opts.keepalive_idle = std::chrono::seconds{11};
  opts.keepalive_interval = std::chrono::seconds{7};
  opts.keepalive_count = 5;
  opts.user_timeout = std::chrono::milliseconds{12345};
  opts.no_delay = false;
  opts.send_buffer = 96 * 1024;
  opts.receive_buffer = 80 * 1024;
  opts.priority = 3;
  return opts;
}

// What read_options() gives for a socket with unusual_options() (Linux doubles the buffer sizes:
// read from a socket they were set on).
std::vector<int> unusual_options_as_read() {
  auto scratch = open_tcp_socket(AF_INET);
  EXPECT_TRUE(scratch);
  EXPECT_TRUE(apply_socket_options(scratch->get(), unusual_options(), SocketRole::client_connect));
  const std::vector<int> read = read_options(scratch->get());
  return {1, 11, 7, 5, 12345, 0, read[6], read[7], 3};
}

// Connects `count` clients to `addr` and runs `loop` until `acceptor` handed them out into
// `accepted`; returns the clients (to keep them open).
std::vector<Fd> accept_n(event::Loop& loop, Acceptor& acceptor, std::vector<Fd>& accepted,
                         const SocketAddress& addr, std::size_t count) {
  std::vector<Fd> clients;
  for (std::size_t i = 0; i < count; ++i) {
    clients.push_back(testing::start_client(addr));
  }
  EXPECT_TRUE(run_until(loop, [&] { return accepted.size() >= count; }));
  EXPECT_EQ(acceptor.rejected_count(), 0u);
  return clients;
}

TEST(AcceptedOptions, EveryAcceptedSocketReadsAsConfiguredWhetherInheritedOrSetAgain) {
  auto loop = testing::make_loop();
  Fd listener =
      testing::listen_loopback();  // default options on the listener: the Acceptor sets its own
  const auto addr = testing::address_of(listener);
  SocketOptions opts = unusual_options();
  int hook_calls = 0;
  opts.on_socket = [&](int, SocketRole role) -> Result<void> {
    EXPECT_EQ(role, SocketRole::server_accept);
    ++hook_calls;
    return {};
  };
  std::vector<Fd> accepted;
  auto acceptor = Acceptor::create(*loop, std::move(listener), opts,
                                   [&](Fd fd, const auto&) { accepted.push_back(std::move(fd)); });
  ASSERT_TRUE(acceptor);
  auto clients = accept_n(*loop, **acceptor, accepted, addr, 3);
  ASSERT_EQ(accepted.size(), 3u);
  const auto expected = unusual_options_as_read();
  for (const Fd& fd : accepted) {
    EXPECT_EQ(read_options(fd.get()), expected);
  }
  EXPECT_EQ(hook_calls, 3);  // the hook is never skipped
}

TEST(AcceptedOptions, ConnectionQueuedBeforeTheAcceptorStillGetsItsOptions) {
  auto loop = testing::make_loop();
  Fd listener = testing::listen_loopback();
  const auto addr = testing::address_of(listener);
  // Completed by the kernel while the listener still had its default options.
  Fd early = testing::start_client(addr);
  Writable writable;
  ASSERT_TRUE(loop->watch(early.get(), event::kWritable, &writable));
  ASSERT_TRUE(run_until(*loop, [&] { return writable.ready; }));
  loop->unwatch(early.get());
  std::vector<Fd> accepted;
  auto acceptor = Acceptor::create(*loop, std::move(listener), unusual_options(),
                                   [&](Fd fd, const auto&) { accepted.push_back(std::move(fd)); });
  ASSERT_TRUE(acceptor);
  Fd late = testing::start_client(addr);
  ASSERT_TRUE(run_until(*loop, [&] { return accepted.size() == 2; }));
  const auto expected = unusual_options_as_read();
  EXPECT_EQ(read_options(accepted[0].get()), expected);
  EXPECT_EQ(read_options(accepted[1].get()), expected);
}

TEST(AcceptedOptions, LinuxPassesAllButPriorityFromListenerToAcceptedSocket) {
  // The saving rests on this kernel behaviour: an accepted socket starts with its listener's
  // keep-alive, user timeout, nodelay, buffers and mark, but not SO_PRIORITY.
  auto loop = testing::make_loop();
  Fd listener = testing::listen_loopback();
  const auto addr = testing::address_of(listener);
  const SocketOptions opts = unusual_options();
  ASSERT_TRUE(apply_inheritable_options(listener.get(), opts));
  Fd client = testing::start_client(addr);
  Fd accepted;
  ASSERT_TRUE(run_until(*loop, [&] {
    if (!accepted.is_valid()) {
      auto fd = accept_connection(listener.get(), nullptr);
      accepted = fd ? std::move(*fd) : Fd{};
    }
    return accepted.is_valid();
  }));
  const std::uint32_t expected = kOptKeepalive | kOptKeepIdle | kOptKeepInterval | kOptKeepCount |
                                 kOptUserTimeout | kOptNoDelay | kOptSendBuffer | kOptReceiveBuffer;
  EXPECT_EQ(inherited_options(listener.get(), accepted.get(), opts), expected);
}

}  // namespace
}  // namespace holdfast::net
