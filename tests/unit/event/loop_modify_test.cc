// Unit tests of Loop::modify(): the events reach the kernel before the next wait, never later.
#include <fcntl.h>
#include <unistd.h>

#include <functional>

#include <gtest/gtest.h>

#include "event/loop.h"

namespace holdfast::event {
namespace {

using std::chrono::milliseconds;

// A non-blocking pipe with one byte waiting in it, closed on destruction.
struct FullPipe {
  int read_end = -1;
  int write_end = -1;
  FullPipe() {
    int fds[2];
    EXPECT_EQ(::pipe2(fds, O_NONBLOCK | O_CLOEXEC), 0);
    read_end = fds[0];
    write_end = fds[1];
    const char c = 'x';
    EXPECT_EQ(::write(write_end, &c, 1), 1);
  }
  ~FullPipe() {
    ::close(read_end);
    ::close(write_end);
  }
  FullPipe(const FullPipe&) = delete;
  FullPipe& operator=(const FullPipe&) = delete;
};

struct Recorder final : IoHandler {
  std::function<void(std::uint32_t)> fn;
  int calls = 0;
  std::uint32_t seen = 0;
  void on_io(std::uint32_t events) override {
    ++calls;
    seen |= events;
    if (fn) {
      fn(events);
    }
  }
};

// Runs one iteration and expects `h` to have seen `fd` readable, then unwatches `fd`.
void expect_readable_once(Loop& loop, int fd, const Recorder& h) {
  EXPECT_TRUE(loop.run_once(milliseconds{0}));
  EXPECT_EQ(h.seen, kReadable);
  loop.unwatch(fd);
}

std::unique_ptr<Loop> make_loop() {
  auto loop = Loop::create();
  EXPECT_TRUE(loop.has_value());
  return std::move(*loop);
}

TEST(LoopModify, LoweredInterestTakesEffectAtTheNextWait) {
  auto loop = make_loop();
  FullPipe p;
  Recorder h;
  h.fn = [&](std::uint32_t) { ASSERT_TRUE(loop->modify(p.read_end, 0, &h)); };
  ASSERT_TRUE(loop->watch(p.read_end, kReadable, &h));
  EXPECT_TRUE(loop->run_once(milliseconds{0}));
  EXPECT_EQ(h.calls, 1);
  // Still readable (level-triggered), but no longer asked for.
  EXPECT_FALSE(loop->run_once(milliseconds{0}));
  EXPECT_EQ(h.calls, 1);
  ASSERT_TRUE(loop->modify(p.read_end, kReadable, &h));
  h.fn = nullptr;
  EXPECT_TRUE(loop->run_once(milliseconds{0}));
  EXPECT_EQ(h.calls, 2);
  loop->unwatch(p.read_end);
}

TEST(LoopModify, ModifyAndBackInOneIterationKeepsTheInterest) {
  auto loop = make_loop();
  FullPipe p;
  Recorder h;
  ASSERT_TRUE(loop->watch(p.read_end, kReadable, &h));
  ASSERT_TRUE(loop->modify(p.read_end, 0, &h));
  ASSERT_TRUE(loop->modify(p.read_end, kReadable, &h));
  expect_readable_once(*loop, p.read_end, h);
}

TEST(LoopModify, ModifyThenUnwatchThenWatchOfTheSameNumberUsesTheNewEvents) {
  auto loop = make_loop();
  Recorder old_handler;
  Recorder new_handler;
  int number = -1;
  {
    FullPipe first;
    ASSERT_TRUE(loop->watch(first.read_end, kReadable, &old_handler));
    ASSERT_TRUE(loop->modify(first.read_end, 0, &old_handler));  // pending, then dropped
    loop->unwatch(first.read_end);
    number = first.read_end;
  }
  FullPipe second;  // the lowest free numbers: the same as the first pipe's
  ASSERT_EQ(second.read_end, number);
  ASSERT_TRUE(loop->watch(second.read_end, kReadable, &new_handler));
  expect_readable_once(*loop, second.read_end, new_handler);
  EXPECT_EQ(old_handler.calls, 0);
}

TEST(LoopModify, ModifyOfAnUnwatchedDescriptorFails) {
  auto loop = make_loop();
  FullPipe p;
  Recorder h;
  auto r = loop->modify(p.read_end, kReadable, &h);
  ASSERT_FALSE(r);
  EXPECT_EQ(r.error(), std::errc::no_such_file_or_directory);
}

}  // namespace
}  // namespace holdfast::event
