// Hierarchical timing wheel (1 ms ticks) with intrusive timers: O(1) arm and cancel, no allocation.
#pragma once

#include <array>
#include <chrono>
#include <cstddef>
#include <cstdint>
#include <new>
#include <optional>
#include <type_traits>

namespace holdfast::event {

/// The clock of every event loop and timer.
using Clock = std::chrono::steady_clock;
/// A point in time of Clock.
using TimePoint = Clock::time_point;

class TimerWheel;
class Timer;

namespace detail {
/// Links of an intrusive circular doubly linked list: a slot's sentinel, or the base of a Timer
/// (every node between the sentinels of a list is a Timer).
struct TimerLink {
  TimerLink* prev = this;
  TimerLink* next = this;
};
}  // namespace detail

/// A timer node owned by its user (embed it in a connection object): arming and cancelling never
/// allocate. Deadlines are rounded UP to the wheel's next whole millisecond, so a timer never fires
/// early. Not copyable or movable (the wheel links to it). Loop-thread only, like its wheel; the
/// wheel must outlive the timer. A callback may arm/cancel any timer, including its own, and may
/// destroy OTHER timers; it must not destroy its own Timer while running.
/// 56 bytes, so that the two or three timers of an idle connection stay small (issue 8): the
/// callback is kept inline, which limits it to a small trivially copyable callable such as a lambda
/// capturing `this` (at most two pointers).
class Timer : private detail::TimerLink {
 public:
  /// Binds the timer to `wheel`; `on_fire` is called (once per arming) when the deadline passes.
  template <class F>
  Timer(TimerWheel& wheel, F on_fire) : wheel_(&wheel) {
    static_assert(sizeof(F) <= sizeof(callback_) && alignof(F) <= alignof(void*) &&
                      std::is_trivially_copyable_v<F> && std::is_trivially_destructible_v<F>,
                  "a Timer callback captures at most two pointers (e.g. [this])");
    ::new (static_cast<void*>(callback_)) F(on_fire);
    invoke_ = [](void* callback) { (*static_cast<F*>(callback))(); };
  }
  /// Cancels the timer if armed.
  ~Timer();
  Timer(const Timer&) = delete;
  Timer& operator=(const Timer&) = delete;

  /// Arms (or re-arms, replacing the previous deadline) to fire `after` from the wheel's now().
  void arm(std::chrono::milliseconds after);
  /// Arms (or re-arms) to fire at `deadline`; a deadline <= now() fires on the next advance().
  void arm_at(TimePoint deadline);
  /// Disarms; no effect when not armed. The callback will not run for the cancelled deadline.
  void cancel();
  /// True between arm and fire/cancel.
  [[nodiscard]] bool is_armed() const { return where_ != kNowhere; }
  /// The deadline of the last arming (rounded up to the wheel's millisecond grid).
  [[nodiscard]] TimePoint deadline() const;

 private:
  friend class TimerWheel;
  static constexpr std::uint16_t kNowhere = 0xffff;

  static constexpr std::uint64_t kMaxTicks = (std::uint64_t{1} << 48) - 1;  // ~8,900 years

  detail::TimerLink& link() { return *this; }
  static Timer* owner_of(detail::TimerLink* node) { return static_cast<Timer*>(node); }
  void fire() { invoke_(callback_); }

  TimerWheel* wheel_;
  void (*invoke_)(void* callback);
  alignas(void*) unsigned char callback_[2 * sizeof(void*)];
  std::uint64_t when_ : 48 = 0;          // deadline in ticks since the wheel's origin
  std::uint64_t where_ : 16 = kNowhere;  // a slot index of the wheel, or kNowhere
};

/// The wheel: 6 levels of 64 slots (level L slot = 64^L ms), covering 2^36 ms (~795 days) from
/// now, plus an overflow list for anything later. A timer sits at the level of the highest 6-bit
/// digit in which its deadline differs from the wheel's current tick; advancing moves ("cascades")
/// a higher-level slot's timers down only when that slot comes due, so every timer is moved at most
/// 6 times. 64-bit occupancy masks find the next non-empty slot without scanning. Loop-thread only.
class TimerWheel {
 public:
  /// Starts the wheel's clock at `now` (its origin: tick 0).
  explicit TimerWheel(TimePoint now);
  /// Disarms all remaining timers (without calling them).
  ~TimerWheel();
  TimerWheel(const TimerWheel&) = delete;
  TimerWheel& operator=(const TimerWheel&) = delete;

  /// Moves the clock to `now` (ignored if earlier than now()) and fires every timer whose deadline
  /// <= now, in deadline order (ties: in arming order). A timer armed by a callback whose deadline
  /// is already reached fires in the NEXT advance(), so a callback that re-arms with 0 ms cannot
  /// livelock the loop.
  void advance(TimePoint now);
  /// A time no later than the earliest deadline (exact for timers due within the current 64 ms
  /// window; otherwise the start of their slot, after which advance() moves them closer). nullopt
  /// when no timer is armed.
  [[nodiscard]] std::optional<TimePoint> next_expiry() const;
  /// The time of the last advance() (or of construction).
  [[nodiscard]] TimePoint now() const { return now_; }
  /// The number of armed timers.
  [[nodiscard]] std::size_t size() const { return size_; }
  /// How many callbacks have run since construction (for loops and tests).
  [[nodiscard]] std::uint64_t fired_count() const { return fired_; }
  /// How many times a timer was moved down a level since construction: at most 6 per arming (one
  /// per level), which is what makes the wheel's total work linear in the number of armings.
  [[nodiscard]] std::uint64_t cascaded_count() const { return cascaded_; }

 private:
  friend class Timer;
  static constexpr int kBits = 6;
  static constexpr int kSlots = 1 << kBits;
  static constexpr int kLevels = 6;
  static constexpr std::uint16_t kDueSlot = kLevels * kSlots;   // deadline already reached
  static constexpr std::uint16_t kOverflowSlot = kDueSlot + 1;  // beyond 2^36 ms
  static constexpr std::uint16_t kFiringSlot = kDueSlot + 2;    // taken out, about to fire
  static constexpr int kLists = kFiringSlot;                    // lists with a sentinel here

  void insert(Timer& t);
  void remove(Timer& t);
  std::uint64_t to_tick_ceil(TimePoint t) const;
  // The lowest non-empty level's next slot and its start tick; false when levels are empty.
  bool find_next_slot(int* level, int* slot, std::uint64_t* start) const;
  void fire_list(detail::TimerLink& list);
  void cascade(int level, int slot);
  void take_overflow();

  TimePoint origin_;
  TimePoint now_;
  std::uint64_t elapsed_ = 0;  // current tick: every timer with when_ <= elapsed_ has fired
  std::size_t size_ = 0;
  std::uint64_t fired_ = 0;
  std::uint64_t cascaded_ = 0;
  std::array<std::uint64_t, kLevels> occupied_{};  // bit s set: slot s of that level is non-empty
  std::array<detail::TimerLink, kLists> lists_{};
};

}  // namespace holdfast::event
