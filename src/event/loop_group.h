// A fixed set of event loops, each run by its own thread, handed out round robin.
#pragma once

#include <atomic>
#include <cstddef>
#include <memory>
#include <thread>
#include <vector>

#include "event/loop.h"
#include "holdfast/result.h"

namespace holdfast::event {

/// N loops, each running on its own thread from start() until stop_and_join().
class LoopGroup {
 public:
  /// Creates `n` (>= 1) loops and starts one thread per loop. Errors: Errc::invalid_argument for
  /// n == 0; the system's when a loop cannot be created (no thread is left running then).
  static Result<std::unique_ptr<LoopGroup>> start(std::size_t n);
  /// Stops and joins (see stop_and_join()).
  ~LoopGroup();
  LoopGroup(const LoopGroup&) = delete;
  LoopGroup& operator=(const LoopGroup&) = delete;

  /// Loop `i` (< size()). The reference stays valid for the group's lifetime. Thread-safe.
  Loop& loop(std::size_t i) { return *loops_[i]; }
  /// The next loop in round-robin order. Thread-safe.
  Loop& next();
  /// The number of loops.
  [[nodiscard]] std::size_t size() const { return loops_.size(); }
  /// Stops every loop and joins its thread. Idempotent; must not be called from a loop thread of
  /// this group. Functions posted afterwards never run.
  void stop_and_join();

 private:
  LoopGroup() = default;

  std::vector<std::unique_ptr<Loop>> loops_;
  std::vector<std::thread> threads_;
  std::atomic<std::size_t> next_{0};
};

}  // namespace holdfast::event
