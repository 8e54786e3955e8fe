// Unit tests of Loop and LoopGroup: pipes, eventfd wakeups, unwatch inside callbacks, timers.
#include "event/loop.h"

#include <fcntl.h>
#include <unistd.h>

#include <atomic>
#include <functional>
#include <future>
#include <thread>

#include <gtest/gtest.h>

#include "event/loop_group.h"

namespace holdfast::event {
namespace {

using std::chrono::milliseconds;

// A non-blocking pipe closed on destruction.
struct Pipe {
  int read_end = -1;
  int write_end = -1;
  Pipe() {
    int fds[2];
    EXPECT_EQ(::pipe2(fds, O_NONBLOCK | O_CLOEXEC), 0);
    read_end = fds[0];
    write_end = fds[1];
  }
  ~Pipe() {
    if (read_end >= 0)
      ::close(read_end);
    if (write_end >= 0)
      ::close(write_end);
  }
  void put(char c) const { ASSERT_EQ(::write(write_end, &c, 1), 1); }
};

struct Handler final : IoHandler {
  std::function<void(std::uint32_t)> fn;
  int calls = 0;
  void on_io(std::uint32_t events) override {
    ++calls;
    if (fn)
      fn(events);
  }
};

std::unique_ptr<Loop> make_loop() {
  auto loop = Loop::create();
  EXPECT_TRUE(loop.has_value());
  return std::move(*loop);
}

TEST(Loop, WatchedPipeDeliversReadableLevelTriggered) {
  auto loop = make_loop();
  Pipe p;
  Handler h;
  std::uint32_t seen = 0;
  h.fn = [&](std::uint32_t ev) { seen = ev; };
  ASSERT_TRUE(loop->watch(p.read_end, kReadable, &h));
  EXPECT_FALSE(loop->run_once(milliseconds{0}));
  EXPECT_EQ(h.calls, 0);
  p.put('x');
  EXPECT_TRUE(loop->run_once(milliseconds{1000}));
  EXPECT_EQ(h.calls, 1);
  EXPECT_TRUE(seen & kReadable);
  EXPECT_TRUE(loop->run_once(milliseconds{0}));  // level-triggered: still unread
  EXPECT_EQ(h.calls, 2);
  char c = 0;
  ASSERT_EQ(::read(p.read_end, &c, 1), 1);
  EXPECT_FALSE(loop->run_once(milliseconds{0}));
  EXPECT_EQ(h.calls, 2);
  loop->unwatch(p.read_end);
  EXPECT_EQ(loop->watched_count(), 0u);
}

TEST(Loop, WatchTwiceFailsAndModifyUnwatchedFails) {
  auto loop = make_loop();
  Pipe p;
  Handler h;
  ASSERT_TRUE(loop->watch(p.read_end, kReadable, &h));
  auto again = loop->watch(p.read_end, kReadable, &h);
  ASSERT_FALSE(again);
  EXPECT_EQ(again.error(), std::errc::file_exists);
  auto mod = loop->modify(p.write_end, kWritable, &h);
  ASSERT_FALSE(mod);
  loop->unwatch(p.read_end);
}

TEST(Loop, ModifySwitchesToWritable) {
  auto loop = make_loop();
  Pipe p;
  Handler h;
  std::uint32_t seen = 0;
  h.fn = [&](std::uint32_t ev) { seen = ev; };
  ASSERT_TRUE(loop->watch(p.write_end, 0, &h));
  EXPECT_FALSE(loop->run_once(milliseconds{0}));
  ASSERT_TRUE(loop->modify(p.write_end, kWritable, &h));
  EXPECT_TRUE(loop->run_once(milliseconds{0}));
  EXPECT_EQ(seen, kWritable);
  loop->unwatch(p.write_end);
}

TEST(Loop, ClosedWriterReportsErrorOrReadableToReader) {
  auto loop = make_loop();
  Pipe p;
  Handler h;
  std::uint32_t seen = 0;
  h.fn = [&](std::uint32_t ev) { seen = ev; };
  ASSERT_TRUE(loop->watch(p.read_end, kReadable, &h));
  ::close(p.write_end);
  p.write_end = -1;
  EXPECT_TRUE(loop->run_once(milliseconds{1000}));
  EXPECT_TRUE(seen & kError);
  loop->unwatch(p.read_end);
}

TEST(Loop, UnwatchInsideCallbackDropsStaleEventsOfSameIteration) {
  auto loop = make_loop();
  Pipe a;
  Pipe b;
  auto hb = std::make_unique<Handler>();
  Handler ha;
  // Whichever handler runs first unwatches (and destroys) the other: the other must not run.
  bool b_ran = false;
  ha.fn = [&](std::uint32_t) {
    if (hb) {
      loop->unwatch(b.read_end);
      hb.reset();
    }
  };
  hb->fn = [&](std::uint32_t) {
    b_ran = true;
    loop->unwatch(a.read_end);
  };
  ASSERT_TRUE(loop->watch(a.read_end, kReadable, &ha));
  ASSERT_TRUE(loop->watch(b.read_end, kReadable, hb.get()));
  a.put('1');
  b.put('2');
  loop->run_once(milliseconds{1000});
  // Exactly one of them ran; the other was unwatched before its collected event was delivered.
  EXPECT_EQ(ha.calls + (b_ran ? 1 : 0), 1);
  EXPECT_EQ(loop->watched_count(), 1u);
  loop->unwatch(a.read_end);
  loop->unwatch(b.read_end);
}

TEST(Loop, UnwatchOwnFdInsideCallbackStopsDelivery) {
  auto loop = make_loop();
  Pipe p;
  Handler h;
  h.fn = [&](std::uint32_t) { loop->unwatch(p.read_end); };
  ASSERT_TRUE(loop->watch(p.read_end, kReadable, &h));
  p.put('x');
  loop->run_once(milliseconds{1000});
  loop->run_once(milliseconds{0});
  EXPECT_EQ(h.calls, 1);
}

TEST(Loop, PostFromAnotherThreadWakesAndRunsOnLoop) {
  auto loop = make_loop();
  std::atomic<bool> ran{false};
  std::thread::id ran_on;
  std::thread poster([&] {
    loop->post([&] {
      ran_on = std::this_thread::get_id();
      ran = true;
    });
  });
  poster.join();
  // The eventfd wakes a wait that would otherwise last 10 s.
  const auto before = Clock::now();
  EXPECT_TRUE(loop->run_once(milliseconds{10'000}));
  EXPECT_LT(Clock::now() - before, std::chrono::seconds{5});
  EXPECT_TRUE(ran);
  EXPECT_EQ(ran_on, std::this_thread::get_id());
}

TEST(Loop, PostedFunctionsRunInOrderAndMayPostAgain) {
  auto loop = make_loop();
  std::vector<int> order;
  loop->post([&] {
    order.push_back(1);
    loop->post([&] { order.push_back(3); });
  });
  loop->post([&] { order.push_back(2); });
  loop->run_once(milliseconds{0});
  EXPECT_EQ(order, std::vector<int>({1, 2}));
  EXPECT_TRUE(loop->run_once(milliseconds{1000}));
  EXPECT_EQ(order, std::vector<int>({1, 2, 3}));
}

TEST(Loop, TimersFireThroughRunOnce) {
  auto loop = make_loop();
  int fired = 0;
  Timer t(loop->timers(), [&] { ++fired; });
  t.arm(milliseconds{0});
  EXPECT_TRUE(loop->run_once(milliseconds{1000}));
  EXPECT_EQ(fired, 1);
  // A short timer bounds the wait: run_once returns well before max_wait.
  t.arm(milliseconds{5});
  const auto before = Clock::now();
  while (fired < 2 && Clock::now() - before < std::chrono::seconds{5}) {
    loop->run_once(milliseconds{10'000});
  }
  EXPECT_EQ(fired, 2);
}

TEST(Loop, TimerArmedByAnIoHandlerAfterALongWaitCountsFromNow) {
  // The loop sleeps 300 ms in epoll with no timer; then a handler arms a 100 ms timer. It must
  // not be overdue at once (the wheel's clock moves before handlers run): a server's short
  // keep-alive timeout armed on a new connection used to close it before its handshake.
  auto loop = make_loop();
  Pipe p;
  Handler h;
  int fired = 0;
  Timer t(loop->timers(), [&] { ++fired; });
  Clock::time_point armed_at;
  h.fn = [&](std::uint32_t) {
    char c = 0;
    (void)::read(p.read_end, &c, 1);
    armed_at = Clock::now();
    t.arm(milliseconds{100});
  };
  ASSERT_TRUE(loop->watch(p.read_end, kReadable, &h));
  std::thread writer([&] {
    std::this_thread::sleep_for(milliseconds{300});
    p.put('x');
  });
  EXPECT_TRUE(loop->run_once(milliseconds{5000}));
  writer.join();
  ASSERT_EQ(h.calls, 1);
  EXPECT_EQ(fired, 0) << "a 100 ms timer fired in the iteration that armed it";
  while (fired == 0 && Clock::now() - armed_at < std::chrono::seconds{5}) {
    loop->run_once(milliseconds{1000});
  }
  EXPECT_EQ(fired, 1);
  EXPECT_GE(Clock::now() - armed_at, milliseconds{95});
  loop->unwatch(p.read_end);
}

TEST(Loop, StopFromAnotherThreadEndsRun) {
  auto loop = make_loop();
  std::promise<void> started;
  loop->post([&] { started.set_value(); });
  std::thread runner([&] { loop->run(); });
  started.get_future().wait();
  EXPECT_FALSE(loop->is_in_loop_thread());
  loop->stop();
  runner.join();
}

TEST(Loop, IsInLoopThreadReportsRunningThread) {
  auto loop = make_loop();
  EXPECT_TRUE(loop->is_in_loop_thread());
  std::atomic<bool> inside{false};
  loop->post([&] {
    inside = loop->is_in_loop_thread();
    loop->stop();
  });
  std::thread runner([&] { loop->run(); });
  runner.join();
  EXPECT_TRUE(inside);
}

TEST(LoopGroup, RunsEachLoopOnItsOwnThreadRoundRobin) {
  auto group = LoopGroup::start(2);
  ASSERT_TRUE(group);
  auto& g = **group;
  EXPECT_EQ(g.size(), 2u);
  Loop* first = &g.next();
  Loop* second = &g.next();
  EXPECT_NE(first, second);
  EXPECT_EQ(&g.next(), first);
  std::promise<std::thread::id> id0;
  std::promise<std::thread::id> id1;
  g.loop(0).post([&] { id0.set_value(std::this_thread::get_id()); });
  g.loop(1).post([&] { id1.set_value(std::this_thread::get_id()); });
  const auto t0 = id0.get_future().get();
  const auto t1 = id1.get_future().get();
  EXPECT_NE(t0, t1);
  EXPECT_NE(t0, std::this_thread::get_id());
  g.stop_and_join();
  g.stop_and_join();  // idempotent
}

TEST(LoopGroup, ZeroLoopsIsAnError) { EXPECT_FALSE(LoopGroup::start(0)); }

}  // namespace
}  // namespace holdfast::event
