// The per-thread event loop: level-triggered epoll, an eventfd for cross-thread wakeups, a timer
// wheel.
#pragma once

#include <sys/epoll.h>

#include <atomic>
#include <chrono>
#include <cstdint>
#include <functional>
#include <memory>
#include <mutex>
#include <thread>
#include <vector>

#include "event/timer_wheel.h"
#include "holdfast/result.h"

namespace holdfast::event {

// Readiness bits passed to watch()/modify() and delivered to IoHandler::on_io: constants of a
// bit set, not an enum, so that they combine with | without casts.
/// EPOLLIN (data, EOF, or a pending accept).
inline constexpr std::uint32_t kReadable = 1;
/// EPOLLOUT.
inline constexpr std::uint32_t kWritable = 2;
/// EPOLLERR or EPOLLHUP: delivered whether asked for or not; read or query SO_ERROR to learn
/// what happened.
inline constexpr std::uint32_t kError = 4;

/// Receives readiness of a watched descriptor. Not owned by the loop: unwatch before destroying it.
class IoHandler {
 public:
  /// Called on the loop thread with the readiness bits (kReadable | kWritable | kError) that are
  /// ready (level-triggered: called again on every iteration while the condition holds).
  virtual void on_io(std::uint32_t events) = 0;

 protected:
  ~IoHandler() = default;
};

/// One event loop, run by one thread. Everything except post() and stop() must be called on the
/// loop thread (the thread that runs run()/run_once(); before the first run, the creating thread).
/// Readiness is LEVEL-triggered. One iteration: wait (bounded by the next timer), dispatch I/O,
/// advance the timer wheel, run posted functions.
class Loop {
 public:
  /// Creates the epoll instance and the wakeup eventfd. Errors: the system's (EMFILE, ENOMEM, ...).
  static Result<std::unique_ptr<Loop>> create();
  /// Closes the descriptors; posted functions that never ran are destroyed without running.
  ~Loop();
  Loop(const Loop&) = delete;
  Loop& operator=(const Loop&) = delete;

  /// Starts watching `fd` for `events` (kReadable/kWritable bits; 0 = only errors) on behalf of
  /// `handler`, which must stay valid until unwatch(fd). Errors: the system's (EEXIST if already
  /// watched).
  Result<void> watch(int fd, std::uint32_t events, IoHandler* handler);
  /// Changes the events and/or handler of a watched fd. The handler changes at once; the kernel
  /// learns the events just before the next wait (so a modify() followed by unwatch(), or by a
  /// modify() back, in the same iteration costs no epoll_ctl), which is when they take effect.
  /// Errors: ENOENT if not watched.
  Result<void> modify(int fd, std::uint32_t events, IoHandler* handler);
  /// Stops watching `fd` (no effect if not watched). Safe inside any on_io, including fd's own:
  /// events already collected for `fd` in this iteration are dropped. Call before closing fd.
  void unwatch(int fd);

  /// Queues `fn` to run on the loop thread and wakes the loop. Thread-safe; functions run in the
  /// order they were posted. Posting from the loop thread runs `fn` in the current/next iteration.
  void post(std::function<void()> fn);
  /// Runs iterations until stop(). Marks the calling thread as the loop thread.
  void run();
  /// Makes run() return after the current iteration. Thread-safe. The request is consumed by the
  /// run() that returns; if made before run() starts, that run() returns at once.
  void stop();
  /// Runs one iteration, waiting at most `max_wait` (less when a timer is due sooner). Returns true
  /// if any I/O handler, timer or posted function ran. Marks the calling thread as the loop thread.
  bool run_once(std::chrono::milliseconds max_wait);

  /// The time read once per iteration, right after waiting.
  [[nodiscard]] TimePoint now() const { return now_; }
  /// The loop's timer wheel; advanced to now() every iteration.
  TimerWheel& timers() { return timers_; }
  /// True on the thread that runs (or last ran, or created) this loop.
  [[nodiscard]] bool is_in_loop_thread() const {
    return owner_.load(std::memory_order_relaxed) == std::this_thread::get_id();
  }
  /// The number of watched descriptors.
  [[nodiscard]] std::size_t watched_count() const { return watched_; }

 private:
  struct Watch {
    IoHandler* handler = nullptr;
    std::uint32_t generation = 0;  // bumped on unwatch, so stale collected events are dropped
    std::uint32_t registered = 0;  // epoll events the kernel has for the fd
    std::uint32_t wanted = 0;      // epoll events asked for by the last watch()/modify()
    bool dirty = false;            // wanted != registered may hold: listed in dirty_
  };
  Loop(int epoll_fd, int wake_fd);
  int wait_timeout_ms(std::chrono::milliseconds max_wait) const;
  bool dispatch(int count);
  bool run_posted();
  void drain_wakeup();
  void flush_modifications();

  int epoll_fd_;
  int wake_fd_;
  TimePoint now_;
  TimerWheel timers_;
  std::vector<Watch> watches_;              // indexed by fd
  std::vector<int> dirty_;                  // fds whose modify() is not yet told to the kernel
  std::vector<struct epoll_event> events_;  // epoll_wait's output buffer
  std::size_t watched_ = 0;
  std::atomic<std::thread::id> owner_;
  std::atomic<bool> stop_requested_{false};

  std::mutex posted_mutex_;
  std::vector<std::function<void()>> posted_;   // guarded by posted_mutex_
  std::vector<std::function<void()>> running_;  // loop thread only: the batch being run
  std::atomic<bool> wake_pending_{false};       // an eventfd write is in flight
};

}  // namespace holdfast::event
