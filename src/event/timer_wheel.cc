// Hierarchical timing wheel: placement by the highest differing 6-bit digit, lazy cascading.
#include "event/timer_wheel.h"

#include <algorithm>
#include <bit>
#include <cassert>
#include <utility>

namespace holdfast::event {
namespace {

using detail::TimerLink;

void link_back(TimerLink& list, TimerLink& node) {
  node.prev = list.prev;
  node.next = &list;
  list.prev->next = &node;
  list.prev = &node;
}

void unlink(TimerLink& node) {
  node.prev->next = node.next;
  node.next->prev = node.prev;
  node.prev = &node;
  node.next = &node;
}

// Moves every node of `from` to the (empty) list `to`.
void splice_all(TimerLink& from, TimerLink& to) {
  assert(to.next == &to);
  if (from.next == &from) {
    return;
  }
  to.next = from.next;
  to.prev = from.prev;
  to.next->prev = &to;
  to.prev->next = &to;
  from.next = &from;
  from.prev = &from;
}

constexpr std::uint64_t kOverflowSpan = std::uint64_t{1} << 36;  // 6 levels of 6 bits
// An idle connection holds two or three timers (issue 8: every byte of an idle connection counts).
static_assert(sizeof(Timer) <= 56);

}  // namespace

Timer::~Timer() { cancel(); }

void Timer::arm(std::chrono::milliseconds after) { arm_at(wheel_->now() + after); }

void Timer::arm_at(TimePoint deadline) {
  cancel();
  when_ = std::min(wheel_->to_tick_ceil(deadline), kMaxTicks);
  ++wheel_->size_;
  if (deadline <= wheel_->now_) {
    // Already due: kept apart so that advance() fires it without waiting for the next tick.
    where_ = TimerWheel::kDueSlot;
    link_back(wheel_->lists_[TimerWheel::kDueSlot], link());
    return;
  }
  wheel_->insert(*this);
}

void Timer::cancel() {
  if (is_armed()) {
    wheel_->remove(*this);
  }
}

TimePoint Timer::deadline() const {
  return wheel_->origin_ + std::chrono::milliseconds{static_cast<std::int64_t>(when_)};
}

TimerWheel::TimerWheel(TimePoint now) : origin_(now), now_(now) {}

TimerWheel::~TimerWheel() {
  for (auto& list : lists_) {
    while (list.next != &list) {
      TimerLink* node = list.next;
      Timer::owner_of(node)->where_ = Timer::kNowhere;
      unlink(*node);
    }
  }
}

std::uint64_t TimerWheel::to_tick_ceil(TimePoint t) const {
  if (t <= origin_) {
    return 0;
  }
  const auto ns = std::chrono::duration_cast<std::chrono::nanoseconds>(t - origin_).count();
  return (static_cast<std::uint64_t>(ns) + 999'999) / 1'000'000;
}

void TimerWheel::insert(Timer& t) {
  // The level is that of the highest digit in which the deadline differs from the current tick, so
  // all timers of a level lie in later slots of the current block of the level above: the lowest
  // non-empty level always holds the earliest deadlines.
  const std::uint64_t diff = t.when_ ^ elapsed_;
  if (diff >= kOverflowSpan) {
    t.where_ = kOverflowSlot;
    link_back(lists_[kOverflowSlot], t.link());
    return;
  }
  const int level = diff == 0 ? 0 : (63 - std::countl_zero(diff)) / kBits;
  const int slot = static_cast<int>((t.when_ >> (level * kBits)) & (kSlots - 1));
  t.where_ = static_cast<std::uint16_t>(level * kSlots + slot);
  link_back(lists_[t.where_], t.link());
  occupied_[static_cast<std::size_t>(level)] |= std::uint64_t{1} << slot;
}

void TimerWheel::remove(Timer& t) {
  TimerLink& list_of = lists_[t.where_ < kLists ? t.where_ : 0];
  unlink(t.link());
  if (t.where_ < kDueSlot && list_of.next == &list_of) {
    occupied_[t.where_ / kSlots] &= ~(std::uint64_t{1} << (t.where_ % kSlots));
  }
  t.where_ = Timer::kNowhere;
  --size_;
}

bool TimerWheel::find_next_slot(int* level, int* slot, std::uint64_t* start) const {
  for (int l = 0; l < kLevels; ++l) {
    const auto shift = l * kBits;
    const auto digit = static_cast<int>((elapsed_ >> shift) & (kSlots - 1));
    const std::uint64_t mask =
        occupied_[static_cast<std::size_t>(l)] & (~std::uint64_t{0} << digit);
    if (mask == 0) {
      continue;
    }
    const int s = std::countr_zero(mask);
    const auto block = (elapsed_ >> (shift + kBits)) << (shift + kBits);
    *level = l;
    *slot = s;
    *start = block + (static_cast<std::uint64_t>(s) << shift);
    return true;
  }
  return false;
}

void TimerWheel::fire_list(TimerLink& list) {
  // Fire from a private list: a callback may cancel or destroy timers that are still waiting in it
  // (unlinking works on any list) and may re-arm timers into the wheel's lists meanwhile.
  TimerLink firing;
  splice_all(list, firing);
  for (TimerLink* n = firing.next; n != &firing; n = n->next) {
    Timer::owner_of(n)->where_ = kFiringSlot;
  }
  while (firing.next != &firing) {
    Timer* t = Timer::owner_of(firing.next);
    unlink(t->link());
    t->where_ = Timer::kNowhere;
    --size_;
    ++fired_;
    t->fire();
  }
}

void TimerWheel::cascade(int level, int slot) {
  TimerLink moving;
  splice_all(lists_[(static_cast<std::size_t>(level) * kSlots) + static_cast<std::size_t>(slot)],
             moving);
  occupied_[static_cast<std::size_t>(level)] &= ~(std::uint64_t{1} << slot);
  while (moving.next != &moving) {
    Timer* t = Timer::owner_of(moving.next);
    unlink(t->link());
    ++cascaded_;
    insert(*t);  // lands on a lower level now that elapsed_ is the slot's start
  }
}

void TimerWheel::take_overflow() {
  TimerLink moving;
  splice_all(lists_[kOverflowSlot], moving);
  while (moving.next != &moving) {
    Timer* t = Timer::owner_of(moving.next);
    unlink(t->link());
    insert(*t);
  }
}

void TimerWheel::advance(TimePoint now) {
  if (now > now_) {
    now_ = now;
  }
  const std::uint64_t target = static_cast<std::uint64_t>(
      std::chrono::duration_cast<std::chrono::milliseconds>(now_ - origin_).count());
  fire_list(lists_[kDueSlot]);
  for (;;) {
    int level = 0;
    int slot = 0;
    std::uint64_t start = 0;
    if (find_next_slot(&level, &slot, &start)) {
      if (start > target) {
        break;
      }
      elapsed_ = start;
      if (level == 0) {
        occupied_[0] &= ~(std::uint64_t{1} << slot);
        fire_list(lists_[static_cast<std::size_t>(slot)]);
      } else {
        cascade(level, slot);
      }
      continue;
    }
    const TimerLink& overflow = lists_[kOverflowSlot];
    const std::uint64_t boundary = (elapsed_ | (kOverflowSpan - 1)) + 1;
    if (overflow.next == &overflow || boundary > target) {
      break;
    }
    elapsed_ = boundary;
    take_overflow();
  }
  if (target > elapsed_) {
    elapsed_ = target;
  }
}

std::optional<TimePoint> TimerWheel::next_expiry() const {
  const TimerLink& due = lists_[kDueSlot];
  if (due.next != &due) {
    return now_;
  }
  int level = 0;
  int slot = 0;
  std::uint64_t start = 0;
  if (!find_next_slot(&level, &slot, &start)) {
    const TimerLink& overflow = lists_[kOverflowSlot];
    if (overflow.next == &overflow) {
      return std::nullopt;
    }
    start = (elapsed_ | (kOverflowSpan - 1)) + 1;
  }
  return origin_ + std::chrono::milliseconds{static_cast<std::int64_t>(start)};
}

}  // namespace holdfast::event
