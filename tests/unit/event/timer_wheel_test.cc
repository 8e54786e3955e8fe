// Unit tests of the timing wheel, driven by a manual clock (no sleeps).
#include "event/timer_wheel.h"

#include <algorithm>
#include <memory>
#include <vector>

#include <gtest/gtest.h>

namespace holdfast::event {
namespace {

using std::chrono::hours;
using std::chrono::milliseconds;

const TimePoint kStart = TimePoint{} + hours{1000};

TEST(TimerWheel, FiresAtDeadlineNotBefore) {
  TimerWheel wheel(kStart);
  int fired = 0;
  Timer t(wheel, [&] { ++fired; });
  t.arm(milliseconds{10});
  EXPECT_TRUE(t.is_armed());
  EXPECT_EQ(t.deadline(), kStart + milliseconds{10});
  wheel.advance(kStart + milliseconds{9});
  EXPECT_EQ(fired, 0);
  wheel.advance(kStart + milliseconds{10});
  EXPECT_EQ(fired, 1);
  EXPECT_FALSE(t.is_armed());
  EXPECT_EQ(wheel.size(), 0u);
  wheel.advance(kStart + milliseconds{100});
  EXPECT_EQ(fired, 1);
}

TEST(TimerWheel, SubMillisecondDeadlineRoundsUp) {
  TimerWheel wheel(kStart);
  int fired = 0;
  Timer t(wheel, [&] { ++fired; });
  t.arm_at(kStart + std::chrono::microseconds{1500});
  EXPECT_EQ(t.deadline(), kStart + milliseconds{2});
  wheel.advance(kStart + std::chrono::microseconds{1999});
  EXPECT_EQ(fired, 0);
  wheel.advance(kStart + milliseconds{2});
  EXPECT_EQ(fired, 1);
}

TEST(TimerWheel, PastDeadlineFiresOnNextAdvanceWithoutTimePassing) {
  TimerWheel wheel(kStart);
  wheel.advance(kStart + milliseconds{50});
  int fired = 0;
  Timer t(wheel, [&] { ++fired; });
  t.arm_at(kStart);
  ASSERT_EQ(wheel.next_expiry(), wheel.now());
  wheel.advance(wheel.now());
  EXPECT_EQ(fired, 1);
}

TEST(TimerWheel, RearmReplacesDeadlineAndCancelPreventsFiring) {
  TimerWheel wheel(kStart);
  int a = 0;
  int b = 0;
  Timer ta(wheel, [&] { ++a; });
  Timer tb(wheel, [&] { ++b; });
  ta.arm(milliseconds{5});
  ta.arm(milliseconds{500});
  tb.arm(milliseconds{5});
  tb.cancel();
  EXPECT_EQ(wheel.size(), 1u);
  wheel.advance(kStart + milliseconds{499});
  EXPECT_EQ(a, 0);
  wheel.advance(kStart + milliseconds{500});
  EXPECT_EQ(a, 1);
  EXPECT_EQ(b, 0);
}

TEST(TimerWheel, NextExpiryNeverLaterThanEarliestDeadline) {
  TimerWheel wheel(kStart);
  Timer t1(wheel, [] {});
  Timer t2(wheel, [] {});
  EXPECT_FALSE(wheel.next_expiry().has_value());
  t1.arm(milliseconds{70'000});
  t2.arm(milliseconds{3'000});
  auto now = kStart;
  int steps = 0;
  while (t2.is_armed()) {
    const auto next = wheel.next_expiry();
    ASSERT_TRUE(next.has_value());
    ASSERT_LE(*next, t2.deadline());
    ASSERT_GT(*next, now);
    now = *next;
    wheel.advance(now);
    ++steps;
  }
  EXPECT_EQ(now, kStart + milliseconds{3'000});
  EXPECT_LE(steps, 6);  // one step per level at most, never one per millisecond
  EXPECT_TRUE(t1.is_armed());
}

TEST(TimerWheel, HoursAndYearsAheadFireOnTime) {
  TimerWheel wheel(kStart);
  std::vector<int> order;
  Timer hour(wheel, [&] { order.push_back(1); });
  Timer day(wheel, [&] { order.push_back(2); });
  Timer years(wheel, [&] { order.push_back(3); });  // beyond 2^36 ms: the overflow list
  hour.arm(hours{3});
  day.arm(hours{26});
  years.arm(hours{24 * 365 * 5});
  wheel.advance(kStart + hours{3} - milliseconds{1});
  EXPECT_TRUE(order.empty());
  wheel.advance(kStart + hours{3});
  EXPECT_EQ(order, std::vector<int>({1}));
  wheel.advance(kStart + hours{26});
  EXPECT_EQ(order, std::vector<int>({1, 2}));
  wheel.advance(kStart + hours{24 * 365 * 5} - milliseconds{1});
  EXPECT_EQ(order, std::vector<int>({1, 2}));
  ASSERT_TRUE(wheel.next_expiry().has_value());
  EXPECT_LE(*wheel.next_expiry(), years.deadline());
  wheel.advance(kStart + hours{24 * 365 * 5});
  EXPECT_EQ(order, std::vector<int>({1, 2, 3}));
}

TEST(TimerWheel, CallbackMayRearmItselfAndCancelOrDestroyOthers) {
  TimerWheel wheel(kStart);
  int self_fired = 0;
  int victim_fired = 0;
  int doomed_fired = 0;
  auto doomed = std::make_unique<Timer>(wheel, [&] { ++doomed_fired; });
  Timer victim(wheel, [&] { ++victim_fired; });
  Timer* self_ptr = nullptr;
  // A Timer's callback holds at most two pointers: the rest is reached through one struct.
  struct Scene {
    int& self_fired;
    Timer& victim;
    std::unique_ptr<Timer>& doomed;
    Timer*& self;
  } scene{self_fired, victim, doomed, self_ptr};
  Timer self(wheel, [&scene] {
    ++scene.self_fired;
    scene.victim.cancel();
    scene.doomed.reset();
    if (scene.self_fired < 3) {
      scene.self->arm(milliseconds{10});
    }
  });
  self_ptr = &self;
  self.arm(milliseconds{10});
  victim.arm(milliseconds{10});  // same slot, after self
  doomed->arm(milliseconds{10});
  wheel.advance(kStart + milliseconds{10});
  EXPECT_EQ(self_fired, 1);
  EXPECT_EQ(victim_fired, 0);
  EXPECT_EQ(doomed_fired, 0);
  EXPECT_EQ(wheel.size(), 1u);
  wheel.advance(kStart + milliseconds{100});  // fires at 20; re-arms relative to now() = 100
  EXPECT_EQ(self_fired, 2);
  EXPECT_EQ(self.deadline(), kStart + milliseconds{110});
  wheel.advance(kStart + milliseconds{110});
  EXPECT_EQ(self_fired, 3);
  EXPECT_EQ(wheel.size(), 0u);
}

TEST(TimerWheel, ZeroDelayRearmInCallbackWaitsForNextAdvance) {
  TimerWheel wheel(kStart);
  int fired = 0;
  Timer* ptr = nullptr;
  Timer t(wheel, [&] {
    ++fired;
    ptr->arm(milliseconds{0});
  });
  ptr = &t;
  t.arm(milliseconds{1});
  wheel.advance(kStart + milliseconds{1});
  EXPECT_EQ(fired, 1);
  wheel.advance(kStart + milliseconds{1});
  EXPECT_EQ(fired, 2);
}

TEST(TimerWheel, TwoHundredThousandTimersHalfCancelledFireInDeadlineOrder) {
  TimerWheel wheel(kStart);
  constexpr int kCount = 200'000;
  std::vector<int> fired;
  fired.reserve(kCount);
  std::vector<std::unique_ptr<Timer>> timers;
  timers.reserve(kCount);
  for (int i = 0; i < kCount; ++i) {
    timers.push_back(std::make_unique<Timer>(wheel, [&fired, i] { fired.push_back(i); }));
    // Spread deadlines over ~10 minutes, not in index order, with collisions.
    const auto delay = milliseconds{1 + (static_cast<std::int64_t>(i) * 7919) % 600'000};
    timers.back()->arm(delay);
  }
  EXPECT_EQ(wheel.size(), static_cast<std::size_t>(kCount));
  for (int i = 1; i < kCount; i += 2) {
    timers[static_cast<std::size_t>(i)]->cancel();
  }
  EXPECT_EQ(wheel.size(), static_cast<std::size_t>(kCount / 2));
  // Advance in uneven steps so that every level cascades.
  auto now = kStart;
  while (wheel.size() > 0) {
    now += milliseconds{997};
    wheel.advance(now);
  }
  ASSERT_EQ(fired.size(), static_cast<std::size_t>(kCount / 2));
  for (std::size_t k = 0; k < fired.size(); ++k) {
    ASSERT_EQ(fired[k] % 2, 0) << "cancelled timer " << fired[k] << " fired";
  }
  const auto deadline_of = [&](int i) { return timers[static_cast<std::size_t>(i)]->deadline(); };
  EXPECT_TRUE(std::is_sorted(fired.begin(), fired.end(),
                             [&](int a, int b) { return deadline_of(a) < deadline_of(b); }));
  EXPECT_EQ(wheel.fired_count(), static_cast<std::uint64_t>(kCount / 2));
  // Total work is linear: each surviving timer moved at most once per level.
  EXPECT_LE(wheel.cascaded_count(), static_cast<std::uint64_t>(kCount / 2) * 6);
}

TEST(TimerWheel, ArmAndCancelCostDoesNotGrowWithLiveTimers) {
  // Counted, not timed: arming and cancelling among 100,000 live timers moves none of them (the
  // cascade counter stays put) and the wheel's size stays exact.
  TimerWheel wheel(kStart);
  std::vector<std::unique_ptr<Timer>> live;
  for (int i = 0; i < 100'000; ++i) {
    live.push_back(std::make_unique<Timer>(wheel, [] {}));
    live.back()->arm(hours{2} + milliseconds{i});
  }
  int fired = 0;
  Timer probe(wheel, [&] { ++fired; });
  for (int i = 0; i < 1000; ++i) {
    probe.arm(milliseconds{1 + i});
    probe.cancel();
  }
  EXPECT_EQ(wheel.size(), 100'000u);
  EXPECT_EQ(wheel.cascaded_count(), 0u);
  probe.arm(milliseconds{5});
  wheel.advance(kStart + milliseconds{5});
  EXPECT_EQ(fired, 1);
  EXPECT_EQ(wheel.fired_count(), 1u);
  EXPECT_EQ(wheel.cascaded_count(), 0u);  // the 2-hour timers still wait on their high level
}

TEST(TimerWheel, DestroyingWheelDisarmsTimers) {
  auto wheel = std::make_unique<TimerWheel>(kStart);
  Timer t(*wheel, [] {});
  t.arm(milliseconds{10});
  wheel.reset();
  EXPECT_FALSE(t.is_armed());
}

}  // namespace
}  // namespace holdfast::event
