// AfterTasks: a server connection's pending ResponseWriter::after() calls.
#include "http/after_tasks.h"

#include <utility>

namespace holdfast::http {

/// One pending after() call: an embedded timer and the function to run.
struct AfterTasks::Task {
  Task(event::TimerWheel& wheel, std::shared_ptr<State> s, Writable f)
      : timer(wheel, [this] { fire(); }), state(std::move(s)), fn(std::move(f)) {}

  void fire() {
    running = true;
    auto f = std::move(fn);
    fn = nullptr;
    f(ResponseWriter(state));
    running = false;
    fired = true;
  }

  event::Timer timer;
  std::shared_ptr<State> state;
  Writable fn;
  Task* next = nullptr;
  bool running = false;
  bool fired = false;
};

void AfterTasks::add(std::shared_ptr<State> state, std::chrono::milliseconds delay, Writable fn) {
  reap();
  auto* task = new Task(wheel_, std::move(state), std::move(fn));
  task->next = head_;
  head_ = task;
  task->timer.arm(delay);
}

void AfterTasks::cancel_all() {
  for (Task* t = head_; t != nullptr; t = t->next) {
    t->timer.cancel();
  }
}

void AfterTasks::reap(bool all) {
  Task** link = &head_;
  while (*link != nullptr) {
    Task* t = *link;
    if (all || (t->fired && !t->running)) {
      *link = t->next;
      delete t;
    } else {
      link = &t->next;
    }
  }
}

}  // namespace holdfast::http
