// Unit tests of the socket functions over loopback (127.0.0.1 only), driven by a Loop.
#include "net/socket.h"

#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sys/socket.h>

#include <cstring>
#include <string>
#include <vector>

#include <gtest/gtest.h>

#include "holdfast/error.h"
#include "net/acceptor.h"
#include "net_test_util.h"

namespace holdfast::net {
namespace {

using testing::address_of;
using testing::listen_loopback;
using testing::make_loop;
using testing::run_until;
using testing::start_client;

int get_int(int fd, int level, int name) {
  int value = -1;
  socklen_t len = sizeof value;
  EXPECT_EQ(::getsockopt(fd, level, name, &value, &len), 0) << std::strerror(errno);
  return value;
}

struct IoFlag final : event::IoHandler {
  std::uint32_t events = 0;
  void on_io(std::uint32_t ev) override { events |= ev; }
};

std::span<const std::uint8_t> bytes(const std::string& s) {
  return {reinterpret_cast<const std::uint8_t*>(s.data()), s.size()};
}

std::string read_all_available(int fd) {
  std::string out;
  std::uint8_t buf[256];
  for (;;) {
    auto n = read_some(fd, buf);
    if (!n || *n == 0) {
      return out;
    }
    out.append(reinterpret_cast<const char*>(buf), *n);
  }
}

TEST(Socket, ListenConnectAcceptReadWriteThroughLoop) {
  auto loop = make_loop();
  Fd listener = listen_loopback();
  const SocketAddress server_addr = address_of(listener);
  ASSERT_NE(server_addr.port(), 0);
  Fd server;
  SocketAddress seen_peer;
  auto acceptor = Acceptor::create(*loop, std::move(listener), SocketOptions{},
                                   [&](Fd fd, const SocketAddress& peer) {
                                     server = std::move(fd);
                                     seen_peer = peer;
                                   });
  ASSERT_TRUE(acceptor);
  Fd client = start_client(server_addr);
  IoFlag client_io;
  ASSERT_TRUE(loop->watch(client.get(), event::kWritable, &client_io));
  ASSERT_TRUE(run_until(*loop, [&] { return server.is_valid() && client_io.events != 0; }));
  EXPECT_FALSE(finish_connect(client.get()));
  EXPECT_EQ(seen_peer, *local_address(client.get()));
  EXPECT_EQ(*peer_address(client.get()), server_addr);
  EXPECT_EQ((*acceptor)->accepted_count(), 1u);

  // Client -> server with write_some; server -> client with writev_some.
  ASSERT_EQ(*write_some(client.get(), bytes("hello")), 5u);
  IoFlag server_io;
  ASSERT_TRUE(loop->watch(server.get(), event::kReadable, &server_io));
  ASSERT_TRUE(run_until(*loop, [&] { return (server_io.events & event::kReadable) != 0; }));
  EXPECT_EQ(read_all_available(server.get()), "hello");
  std::string a = "wor";
  std::string b = "ld";
  const iovec parts[] = {{a.data(), a.size()}, {b.data(), b.size()}};
  ASSERT_EQ(*writev_some(server.get(), parts), 5u);
  ASSERT_TRUE(loop->modify(client.get(), event::kReadable, &client_io));
  client_io.events = 0;
  ASSERT_TRUE(run_until(*loop, [&] { return (client_io.events & event::kReadable) != 0; }));
  EXPECT_EQ(read_all_available(client.get()), "world");

  // Nothing more: would-block. Then the client closes: the server reads EOF (0).
  std::uint8_t buf[8];
  auto none = read_some(server.get(), buf);
  ASSERT_FALSE(none);
  EXPECT_TRUE(is_would_block(none.error()));
  loop->unwatch(client.get());
  client.reset();
  server_io.events = 0;
  ASSERT_TRUE(run_until(*loop, [&] { return server_io.events != 0; }));
  auto eof = read_some(server.get(), buf);
  ASSERT_TRUE(eof);
  EXPECT_EQ(*eof, 0u);
  loop->unwatch(server.get());
}

TEST(Socket, OptionsAreAppliedToTheSocket) {
  auto fd = open_tcp_socket(AF_INET);
  ASSERT_TRUE(fd);
  SocketOptions opts;
  opts.keepalive_idle = std::chrono::seconds{7};
  opts.keepalive_interval = std::chrono::seconds{3};
  opts.keepalive_count = 4;
  opts.send_buffer = 64 * 1024;
  ASSERT_TRUE(apply_socket_options(fd->get(), opts, SocketRole::client_connect));
  EXPECT_EQ(get_int(fd->get(), SOL_SOCKET, SO_KEEPALIVE), 1);
  EXPECT_EQ(get_int(fd->get(), IPPROTO_TCP, TCP_KEEPIDLE), 7);
  EXPECT_EQ(get_int(fd->get(), IPPROTO_TCP, TCP_KEEPINTVL), 3);
  EXPECT_EQ(get_int(fd->get(), IPPROTO_TCP, TCP_KEEPCNT), 4);
  EXPECT_EQ(get_int(fd->get(), IPPROTO_TCP, TCP_USER_TIMEOUT), (7 + 3 * 4) * 1000);
  EXPECT_EQ(get_int(fd->get(), IPPROTO_TCP, TCP_NODELAY), 1);
  EXPECT_GE(get_int(fd->get(), SOL_SOCKET, SO_SNDBUF), 64 * 1024);  // Linux doubles it
}

TEST(Socket, ExplicitUserTimeoutAndDisabledKeepalive) {
  auto fd = open_tcp_socket(AF_INET);
  ASSERT_TRUE(fd);
  SocketOptions opts;
  opts.keepalive = false;
  opts.no_delay = false;
  opts.user_timeout = std::chrono::milliseconds{4321};
  ASSERT_TRUE(apply_socket_options(fd->get(), opts, SocketRole::client_connect));
  EXPECT_EQ(get_int(fd->get(), SOL_SOCKET, SO_KEEPALIVE), 0);
  EXPECT_EQ(get_int(fd->get(), IPPROTO_TCP, TCP_USER_TIMEOUT), 4321);
  EXPECT_EQ(get_int(fd->get(), IPPROTO_TCP, TCP_NODELAY), 0);
}

TEST(Socket, FailingOptionIsNamedInTheError) {
  auto fd = open_tcp_socket(AF_INET);
  ASSERT_TRUE(fd);
  SocketOptions opts;
  opts.keepalive_count = -1;
  auto r = apply_socket_options(fd->get(), opts, SocketRole::client_connect);
  ASSERT_FALSE(r);
  EXPECT_EQ(r.error().message(), "setsockopt(TCP_KEEPCNT) failed: Invalid argument");
  EXPECT_EQ(r.error(), std::errc::invalid_argument);
  EXPECT_EQ(std::string(r.error().category().name()), "net");
}

TEST(Socket, HookRunsLastWithRoleAndItsErrorAborts) {
  auto fd = open_tcp_socket(AF_INET);
  ASSERT_TRUE(fd);
  SocketOptions opts;
  int calls = 0;
  SocketRole seen_role = SocketRole::server_listen;
  int nodelay_at_hook = -1;
  opts.on_socket = [&](int hook_fd, SocketRole role) -> Result<void> {
    ++calls;
    seen_role = role;
    nodelay_at_hook = get_int(hook_fd, IPPROTO_TCP, TCP_NODELAY);
    return fail(Errc::protocol_error);
  };
  auto r = apply_socket_options(fd->get(), opts, SocketRole::client_connect);
  ASSERT_FALSE(r);
  EXPECT_EQ(r.error(), Errc::protocol_error);
  EXPECT_EQ(calls, 1);
  EXPECT_EQ(seen_role, SocketRole::client_connect);
  EXPECT_EQ(nodelay_at_hook, 1);  // the built-in options were applied before the hook
}

TEST(Socket, ListenHookGetsListenRoleAndCanRefuseTheListener) {
  SocketOptions opts;
  std::vector<SocketRole> roles;
  opts.on_socket = [&](int, SocketRole role) -> Result<void> {
    roles.push_back(role);
    return {};
  };
  Fd ok = listen_loopback(opts);
  EXPECT_TRUE(ok.is_valid());
  EXPECT_EQ(roles, std::vector<SocketRole>({SocketRole::server_listen}));
  opts.on_socket = [](int, SocketRole) -> Result<void> { return fail(Errc::invalid_argument); };
  auto refused = listen_tcp(SocketAddress::loopback_v4(0), ListenOptions{}, opts);
  ASSERT_FALSE(refused);
  EXPECT_EQ(refused.error(), Errc::invalid_argument);
}

TEST(Socket, AcceptedHookGetsAcceptRoleAndItsErrorDropsTheConnection) {
  auto loop = make_loop();
  Fd listener = listen_loopback();
  const auto addr = address_of(listener);
  SocketOptions accepted;
  std::vector<SocketRole> roles;
  accepted.on_socket = [&](int, SocketRole role) -> Result<void> {
    roles.push_back(role);
    return fail(Errc::shutting_down);
  };
  int handed_out = 0;
  std::error_code reported;
  auto acceptor = Acceptor::create(*loop, std::move(listener), accepted,
                                   [&](Fd, const SocketAddress&) { ++handed_out; });
  ASSERT_TRUE(acceptor);
  (*acceptor)->set_on_error([&](std::error_code ec) { reported = ec; });
  Fd client = start_client(addr);
  ASSERT_TRUE(run_until(*loop, [&] { return (*acceptor)->rejected_count() == 1; }));
  EXPECT_EQ(handed_out, 0);
  EXPECT_EQ(roles, std::vector<SocketRole>({SocketRole::server_accept}));
  EXPECT_EQ(reported, Errc::shutting_down);
  // The client sees the connection end (EOF or reset), not a hang.
  IoFlag io;
  ASSERT_TRUE(loop->watch(client.get(), event::kReadable, &io));
  ASSERT_TRUE(run_until(*loop, [&] { return io.events != 0; }));
  std::uint8_t buf[4];
  auto n = read_some(client.get(), buf);
  EXPECT_TRUE((n && *n == 0) || (!n && n.error() == std::errc::connection_reset));
  loop->unwatch(client.get());
}

TEST(Socket, BindAddressIsUsedForClientSockets) {
  auto loop = make_loop();
  Fd listener = listen_loopback();
  SocketOptions opts;
  opts.bind_address = "127.0.0.1";
  Fd client = start_client(address_of(listener), opts);
  auto local = local_address(client.get());
  ASSERT_TRUE(local);
  EXPECT_EQ(local->ip_string(), "127.0.0.1");

  auto fd = open_tcp_socket(AF_INET);
  ASSERT_TRUE(fd);
  opts.bind_address = "not-an-ip";
  auto r = apply_socket_options(fd->get(), opts, SocketRole::client_connect);
  ASSERT_FALSE(r);
  EXPECT_NE(r.error().message().find("bind_address"), std::string::npos);
  // Not applied to server roles.
  EXPECT_TRUE(apply_socket_options(fd->get(), opts, SocketRole::server_accept));
}

TEST(Socket, SecondListenerOnSamePortFailsWithAddressInUse) {
  Fd first = listen_loopback();
  auto second = listen_tcp(address_of(first), ListenOptions{}, SocketOptions{});
  ASSERT_FALSE(second);
  EXPECT_EQ(second.error(), std::errc::address_in_use);
  EXPECT_NE(second.error().message().find("bind()"), std::string::npos);
}

TEST(Socket, ReusePortAllowsTwoListeners) {
  ListenOptions lo;
  lo.reuse_port = true;
  auto first = listen_tcp(SocketAddress::loopback_v4(0), lo, SocketOptions{});
  ASSERT_TRUE(first);
  auto second = listen_tcp(address_of(*first), lo, SocketOptions{});
  EXPECT_TRUE(second) << (second ? "" : second.error().message());
}

TEST(Socket, ConnectToClosedPortReportsRefused) {
  auto loop = make_loop();
  SocketAddress addr;
  {
    Fd listener = listen_loopback();
    addr = address_of(listener);
  }
  Fd client = start_client(addr);
  IoFlag io;
  ASSERT_TRUE(loop->watch(client.get(), event::kWritable, &io));
  ASSERT_TRUE(run_until(*loop, [&] { return io.events != 0; }));
  EXPECT_EQ(finish_connect(client.get()), std::errc::connection_refused);
  loop->unwatch(client.get());
}

TEST(Socket, ClassifyKeepsSystemErrorsWithoutTimeoutEvidence) {
  auto fd = open_tcp_socket(AF_INET);
  ASSERT_TRUE(fd);
  EXPECT_EQ(classify_socket_error(fd->get(), ECONNRESET), std::errc::connection_reset);
  // ETIMEDOUT on a socket that never sent a probe or data: no refinement possible.
  EXPECT_EQ(classify_socket_error(fd->get(), ETIMEDOUT), std::errc::timed_out);
}

TEST(Socket, WouldBlockIsRecognized) {
  EXPECT_TRUE(is_would_block(std::error_code(EAGAIN, std::system_category())));
  EXPECT_TRUE(is_would_block(std::make_error_code(std::errc::operation_would_block)));
  EXPECT_FALSE(is_would_block(std::error_code(ECONNRESET, std::system_category())));
  EXPECT_FALSE(is_would_block({}));
}

TEST(Fd, OwnsMovesAndReleases) {
  auto sock = open_tcp_socket(AF_INET);
  ASSERT_TRUE(sock);
  Fd a = std::move(*sock);
  const int raw = a.get();
  Fd b = std::move(a);
  EXPECT_FALSE(a.is_valid());
  EXPECT_EQ(b.get(), raw);
  const int released = b.release();
  EXPECT_EQ(released, raw);
  EXPECT_FALSE(b.is_valid());
  Fd c(released);
  c.reset();
  EXPECT_FALSE(c.is_valid());
  EXPECT_EQ(::fcntl(raw, F_GETFD), -1);  // closed
}

}  // namespace
}  // namespace holdfast::net
