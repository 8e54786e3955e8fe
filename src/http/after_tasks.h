// The pending ResponseWriter::after() calls of one server connection (HTTP/1.1 or HTTP/2).
#pragma once

#include <chrono>
#include <functional>
#include <memory>

#include "event/timer_wheel.h"
#include "http/server_exchange.h"

namespace holdfast::http {

/// A connection's after() timers: each an embedded timer and the function it runs with a writer on
/// its exchange. Fired tasks are freed lazily (reap), never from inside their own callback.
/// Loop-thread only; owned by the connection, which calls cancel_all() when it closes.
class AfterTasks {
 public:
  using State = ResponseWriter::State;
  using Writable = std::function<void(const ResponseWriter&)>;

  explicit AfterTasks(event::TimerWheel& wheel) : wheel_(wheel) {}
  /// Frees every task (their timers are cancelled: no callback runs).
  ~AfterTasks() { reap(true); }
  AfterTasks(const AfterTasks&) = delete;
  AfterTasks& operator=(const AfterTasks&) = delete;

  /// Runs `fn(ResponseWriter(state))` after `delay`, unless cancel_all() comes first. Frees the
  /// tasks that fired before.
  void add(std::shared_ptr<State> state, std::chrono::milliseconds delay, Writable fn);
  /// Cancels every pending task (the connection closed).
  void cancel_all();
  /// Frees the tasks that fired (all of them when `all`: only from the owner's destructor).
  void reap(bool all = false);

 private:
  struct Task;
  event::TimerWheel& wheel_;
  Task* head_ = nullptr;  // newest first
};

}  // namespace holdfast::http
