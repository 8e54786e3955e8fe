// Unit tests of Acceptor: pause/resume, descriptor exhaustion, destruction from on_accept.
#include "net/acceptor.h"

#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sys/resource.h>
#include <unistd.h>

#include <vector>

#include <gtest/gtest.h>

#include "net_test_util.h"

namespace holdfast::net {
namespace {

using std::chrono::milliseconds;
using testing::address_of;
using testing::listen_loopback;
using testing::make_loop;
using testing::run_until;
using testing::start_client;

TEST(Acceptor, PauseStopsAcceptingAndResumeTakesTheBacklog) {
  auto loop = make_loop();
  Fd listener = listen_loopback();
  const auto addr = address_of(listener);
  std::vector<Fd> accepted;
  auto acceptor =
      Acceptor::create(*loop, std::move(listener), SocketOptions{},
                       [&](Fd fd, const SocketAddress&) { accepted.push_back(std::move(fd)); });
  ASSERT_TRUE(acceptor);
  (*acceptor)->pause();
  EXPECT_TRUE((*acceptor)->is_paused());
  Fd c1 = start_client(addr);
  Fd c2 = start_client(addr);
  for (int i = 0; i < 5; ++i) {
    loop->run_once(milliseconds{20});
  }
  EXPECT_TRUE(accepted.empty());
  (*acceptor)->resume();
  ASSERT_TRUE(run_until(*loop, [&] { return accepted.size() == 2; }));
  EXPECT_EQ((*acceptor)->accepted_count(), 2u);
}

TEST(Acceptor, AcceptedSocketsGetTheirOptions) {
  auto loop = make_loop();
  Fd listener = listen_loopback();
  const auto addr = address_of(listener);
  SocketOptions opts;
  opts.keepalive_idle = std::chrono::seconds{11};
  Fd server;
  auto acceptor = Acceptor::create(*loop, std::move(listener), opts,
                                   [&](Fd fd, const SocketAddress&) { server = std::move(fd); });
  ASSERT_TRUE(acceptor);
  Fd client = start_client(addr);
  ASSERT_TRUE(run_until(*loop, [&] { return server.is_valid(); }));
  int idle = 0;
  socklen_t len = sizeof idle;
  ASSERT_EQ(::getsockopt(server.get(), IPPROTO_TCP, TCP_KEEPIDLE, &idle, &len), 0);
  EXPECT_EQ(idle, 11);
  EXPECT_EQ(::fcntl(server.get(), F_GETFL) & O_NONBLOCK, O_NONBLOCK);
}

TEST(Acceptor, OnAcceptMayDestroyTheAcceptor) {
  auto loop = make_loop();
  Fd listener = listen_loopback();
  const auto addr = address_of(listener);
  std::unique_ptr<Acceptor> acceptor;
  int calls = 0;
  auto created =
      Acceptor::create(*loop, std::move(listener), SocketOptions{}, [&](Fd, const SocketAddress&) {
        ++calls;
        acceptor.reset();
      });
  ASSERT_TRUE(created);
  acceptor = std::move(*created);
  Fd c1 = start_client(addr);
  Fd c2 = start_client(addr);
  ASSERT_TRUE(run_until(*loop, [&] { return calls >= 1; }));
  for (int i = 0; i < 3; ++i) {
    loop->run_once(milliseconds{10});
  }
  EXPECT_EQ(calls, 1);
  EXPECT_EQ(loop->watched_count(), 0u);
}

TEST(Acceptor, DescriptorExhaustionPausesInsteadOfSpinning) {
  auto loop = make_loop();
  Fd listener = listen_loopback();
  const auto addr = address_of(listener);
  std::vector<Fd> accepted;
  auto acceptor =
      Acceptor::create(*loop, std::move(listener), SocketOptions{},
                       [&](Fd fd, const SocketAddress&) { accepted.push_back(std::move(fd)); });
  ASSERT_TRUE(acceptor);
  // UBSan's vptr check probes memory through a pipe the first time it meets a type: with no
  // descriptor left it reports a false "invalid vptr". One connection accepted first makes the
  // calls that run while descriptors are exhausted (on_io, is_would_block) known to it.
  Fd warm_up = start_client(addr);
  ASSERT_TRUE(run_until(*loop, [&] { return accepted.size() == 1; }));
  accepted.clear();
  Fd client = start_client(addr);

  // Use up every descriptor below a lowered soft limit, so that accept4() fails with EMFILE.
  rlimit saved{};
  ASSERT_EQ(::getrlimit(RLIMIT_NOFILE, &saved), 0);
  const int probe = ::dup(0);
  ASSERT_GE(probe, 0);
  ::close(probe);
  rlimit low = saved;
  low.rlim_cur = static_cast<rlim_t>(probe + 64);
  ASSERT_EQ(::setrlimit(RLIMIT_NOFILE, &low), 0);
  std::vector<int> filler;
  for (int fd = ::dup(0); fd >= 0; fd = ::dup(0)) {
    filler.push_back(fd);
  }
  int iterations = 0;
  for (; iterations < 20 && (*acceptor)->exhausted_count() == 0; ++iterations) {
    loop->run_once(milliseconds{50});
  }
  const auto exhausted = (*acceptor)->exhausted_count();
  // While paused, further iterations do not retry accept (no busy loop).
  for (int i = 0; i < 3; ++i) {
    loop->run_once(milliseconds{0});
  }
  const auto exhausted_after = (*acceptor)->exhausted_count();
  for (int fd : filler) {
    ::close(fd);
  }
  ASSERT_EQ(::setrlimit(RLIMIT_NOFILE, &saved), 0);
  EXPECT_EQ(exhausted, 1u);
  EXPECT_EQ(exhausted_after, 1u);
  EXPECT_TRUE(accepted.empty());
  // After the pause the pending connection is accepted.
  ASSERT_TRUE(run_until(*loop, [&] { return accepted.size() == 1; }));
}

}  // namespace
}  // namespace holdfast::net
