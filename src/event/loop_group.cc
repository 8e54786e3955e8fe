// LoopGroup: threads running one Loop each.
#include "event/loop_group.h"

#include "holdfast/error.h"

namespace holdfast::event {

Result<std::unique_ptr<LoopGroup>> LoopGroup::start(std::size_t n) {
  if (n == 0) {
    return fail(Errc::invalid_argument);
  }
  std::unique_ptr<LoopGroup> group(new LoopGroup());
  group->loops_.reserve(n);
  for (std::size_t i = 0; i < n; ++i) {
    auto loop = Loop::create();
    if (!loop) {
      return fail(loop.error());
    }
    group->loops_.push_back(std::move(*loop));
  }
  group->threads_.reserve(n);
  for (auto& loop : group->loops_) {
    Loop* l = loop.get();
    group->threads_.emplace_back([l] { l->run(); });
  }
  return group;
}

LoopGroup::~LoopGroup() { stop_and_join(); }

Loop& LoopGroup::next() {
  const std::size_t i = next_.fetch_add(1, std::memory_order_relaxed);
  return *loops_[i % loops_.size()];
}

void LoopGroup::stop_and_join() {
  for (std::size_t i = 0; i < threads_.size(); ++i) {
    if (threads_[i].joinable()) {
      loops_[i]->stop();
      threads_[i].join();
    }
  }
}

}  // namespace holdfast::event
