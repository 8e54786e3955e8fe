// The epoll event loop: descriptor table with generations, eventfd wakeups, timer integration.
#include "event/loop.h"

#include <sys/eventfd.h>
#include <unistd.h>

#include <cerrno>
#include <limits>
#include <utility>

namespace holdfast::event {
namespace {

constexpr std::size_t kMaxEventsPerWait = 256;
constexpr auto kRunWait = std::chrono::milliseconds{60'000};

std::error_code last_error() { return {errno, std::system_category()}; }

std::uint32_t to_epoll(std::uint32_t events) {
  std::uint32_t out = 0;
  if (events & kReadable) {
    // EPOLLRDHUP: a peer's half-close shows up as readable (read() then returns 0).
    out |= EPOLLIN | EPOLLRDHUP;
  }
  if (events & kWritable) {
    out |= EPOLLOUT;
  }
  return out;
}

std::uint32_t from_epoll(std::uint32_t events) {
  std::uint32_t out = 0;
  if (events & (EPOLLIN | EPOLLPRI | EPOLLRDHUP)) {
    out |= kReadable;
  }
  if (events & EPOLLOUT) {
    out |= kWritable;
  }
  if (events & (EPOLLERR | EPOLLHUP)) {
    out |= kError;
  }
  return out;
}

// epoll's user data: the fd and the generation of its table entry when it was registered.
std::uint64_t pack(int fd, std::uint32_t generation) {
  return (std::uint64_t{generation} << 32) | static_cast<std::uint32_t>(fd);
}

}  // namespace

Result<std::unique_ptr<Loop>> Loop::create() {
  const int epoll_fd = ::epoll_create1(EPOLL_CLOEXEC);
  if (epoll_fd < 0) {
    return fail(last_error());
  }
  const int wake_fd = ::eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
  if (wake_fd < 0) {
    const auto ec = last_error();
    ::close(epoll_fd);
    return fail(ec);
  }
  epoll_event ev{};
  ev.events = EPOLLIN;
  ev.data.u64 = pack(wake_fd, 0);
  if (::epoll_ctl(epoll_fd, EPOLL_CTL_ADD, wake_fd, &ev) != 0) {
    const auto ec = last_error();
    ::close(wake_fd);
    ::close(epoll_fd);
    return fail(ec);
  }
  return std::unique_ptr<Loop>(new Loop(epoll_fd, wake_fd));
}

Loop::Loop(int epoll_fd, int wake_fd)
    : epoll_fd_(epoll_fd),
      wake_fd_(wake_fd),
      now_(Clock::now()),
      timers_(now_),
      events_(kMaxEventsPerWait),
      owner_(std::this_thread::get_id()) {}

Loop::~Loop() {
  ::close(wake_fd_);
  ::close(epoll_fd_);
}

Result<void> Loop::watch(int fd, std::uint32_t events, IoHandler* handler) {
  if (fd < 0 || handler == nullptr) {
    return fail(std::make_error_code(std::errc::invalid_argument));
  }
  const auto index = static_cast<std::size_t>(fd);
  if (index >= watches_.size()) {
    watches_.resize(index + 1);
  }
  Watch& w = watches_[index];
  if (w.handler != nullptr) {
    return fail(std::make_error_code(std::errc::file_exists));
  }
  epoll_event ev{};
  ev.events = to_epoll(events);
  ev.data.u64 = pack(fd, w.generation);
  if (::epoll_ctl(epoll_fd_, EPOLL_CTL_ADD, fd, &ev) != 0) {
    return fail(last_error());
  }
  w.handler = handler;
  w.registered = ev.events;
  w.wanted = ev.events;
  ++watched_;
  return {};
}

Result<void> Loop::modify(int fd, std::uint32_t events, IoHandler* handler) {
  const auto index = static_cast<std::size_t>(fd);
  if (fd < 0 || handler == nullptr || index >= watches_.size() ||
      watches_[index].handler == nullptr) {
    return fail(std::make_error_code(std::errc::no_such_file_or_directory));
  }
  Watch& w = watches_[index];
  w.handler = handler;
  w.wanted = to_epoll(events);
  if (!w.dirty && w.wanted != w.registered) {
    w.dirty = true;
    dirty_.push_back(fd);
  }
  return {};
}

// Tells the kernel the events of the fds modified since the last wait. An fd unwatched since is
// no longer dirty (its entry is skipped), and one watched anew under the same number has its
// events registered by watch() itself.
void Loop::flush_modifications() {
  for (const int fd : dirty_) {
    Watch& w = watches_[static_cast<std::size_t>(fd)];
    if (!w.dirty) {
      continue;
    }
    w.dirty = false;
    if (w.wanted == w.registered) {
      continue;
    }
    epoll_event ev{};
    ev.events = w.wanted;
    ev.data.u64 = pack(fd, w.generation);
    // Fails only for a descriptor closed before unwatch() (a caller's bug): nothing to update.
    if (::epoll_ctl(epoll_fd_, EPOLL_CTL_MOD, fd, &ev) == 0) {
      w.registered = w.wanted;
    }
  }
  dirty_.clear();
}

void Loop::unwatch(int fd) {
  const auto index = static_cast<std::size_t>(fd);
  if (fd < 0 || index >= watches_.size() || watches_[index].handler == nullptr) {
    return;
  }
  // The fd may already be closed (EBADF), in which case the kernel dropped it from the set.
  ::epoll_ctl(epoll_fd_, EPOLL_CTL_DEL, fd, nullptr);
  Watch& w = watches_[index];
  w.handler = nullptr;
  w.dirty = false;
  ++w.generation;
  --watched_;
}

void Loop::post(std::function<void()> fn) {
  {
    const std::lock_guard<std::mutex> lock(posted_mutex_);
    posted_.push_back(std::move(fn));
  }
  if (!wake_pending_.exchange(true, std::memory_order_acq_rel)) {
    const std::uint64_t one = 1;
    // A full counter (EAGAIN) still leaves the eventfd readable, which is all we need.
    [[maybe_unused]] const auto n = ::write(wake_fd_, &one, sizeof one);
  }
}

void Loop::stop() {
  stop_requested_.store(true, std::memory_order_release);
  if (!wake_pending_.exchange(true, std::memory_order_acq_rel)) {
    const std::uint64_t one = 1;
    [[maybe_unused]] const auto n = ::write(wake_fd_, &one, sizeof one);
  }
}

void Loop::run() {
  owner_.store(std::this_thread::get_id(), std::memory_order_relaxed);
  while (!stop_requested_.exchange(false, std::memory_order_acq_rel)) {
    run_once(kRunWait);
  }
}

int Loop::wait_timeout_ms(std::chrono::milliseconds max_wait) const {
  auto wait = max_wait;
  if (const auto next = timers_.next_expiry()) {
    const auto until = *next - Clock::now();
    // Round up: waking a little late is fine, waking early costs an extra empty iteration.
    const auto until_ms = std::chrono::ceil<std::chrono::milliseconds>(until);
    wait = std::min(wait, std::max(until_ms, std::chrono::milliseconds{0}));
  }
  const auto capped = std::min<std::int64_t>(wait.count(), std::numeric_limits<int>::max());
  return static_cast<int>(std::max<std::int64_t>(capped, 0));
}

bool Loop::run_once(std::chrono::milliseconds max_wait) {
  owner_.store(std::this_thread::get_id(), std::memory_order_relaxed);
  flush_modifications();
  const int timeout = wait_timeout_ms(max_wait);
  int count = ::epoll_wait(epoll_fd_, events_.data(), static_cast<int>(events_.size()), timeout);
  if (count < 0) {
    count = 0;  // EINTR: a signal; just run the rest of the iteration
  }
  now_ = Clock::now();
  // The wheel's clock moves before any handler runs: a timer armed by an I/O handler counts from
  // now, not from when the loop went to sleep (after a long wait, a short timeout armed on a new
  // connection would otherwise be overdue at once and fire before its handshake could finish).
  const auto fired_before = timers_.fired_count();
  timers_.advance(now_);
  bool did_work = timers_.fired_count() != fired_before;
  did_work = dispatch(count) || did_work;
  did_work = run_posted() || did_work;
  return did_work;
}

bool Loop::dispatch(int count) {
  bool did_work = false;
  for (int i = 0; i < count; ++i) {
    const epoll_event& ev = events_[static_cast<std::size_t>(i)];
    const auto fd = static_cast<int>(ev.data.u64 & 0xffffffffu);
    const auto generation = static_cast<std::uint32_t>(ev.data.u64 >> 32);
    if (fd == wake_fd_) {
      drain_wakeup();
      continue;
    }
    // Look the handler up now, not when collected: an earlier handler of this batch may have
    // unwatched this fd (and destroyed its handler, or re-used the number for a new watch).
    const auto index = static_cast<std::size_t>(fd);
    if (index >= watches_.size()) {
      continue;
    }
    const Watch& w = watches_[index];
    if (w.handler == nullptr || w.generation != generation) {
      continue;
    }
    w.handler->on_io(from_epoll(ev.events));
    did_work = true;
  }
  return did_work;
}

void Loop::drain_wakeup() {
  std::uint64_t value = 0;
  [[maybe_unused]] const auto n = ::read(wake_fd_, &value, sizeof value);
}

bool Loop::run_posted() {
  // Clear the flag before taking the batch: a post() racing with us then writes the eventfd again,
  // so its function is never left waiting for an unrelated wakeup.
  wake_pending_.store(false, std::memory_order_release);
  {
    const std::lock_guard<std::mutex> lock(posted_mutex_);
    if (posted_.empty()) {
      return false;
    }
    running_.swap(posted_);
  }
  for (auto& fn : running_) {
    fn();
  }
  running_.clear();
  return true;
}

}  // namespace holdfast::event
