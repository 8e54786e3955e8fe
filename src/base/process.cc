// Fork detection: pthread_atfork handlers keep a cached pid and a generation, and call
// participants.
#include "base/process.h"

#include <pthread.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <mutex>
#include <vector>

namespace holdfast::base {
namespace {

// The registry. Its mutex is held from the prepare handler to the parent/child handler; in the
// child the (locked) mutex is leaked and replaced, since unlocking a copy of a mutex owned by a
// thread of another process is not defined.
struct Registry {
  std::mutex* mutex = new std::mutex;
  std::vector<ForkParticipant*> participants;
  std::vector<std::mutex*> retired;  // mutexes inherited locked; kept reachable, never freed
};

Registry& registry() {
  static auto* r = new Registry;  // never destroyed: atfork handlers may run during exit
  return *r;
}

std::atomic<int> g_pid{0};
std::atomic<std::uint64_t> g_generation{0};

void prepare() {
  Registry& r = registry();
  r.mutex->lock();
  for (ForkParticipant* p : r.participants) {
    p->before_fork();
  }
}

void parent() {
  Registry& r = registry();
  // Reverse order, like lock release.
  for (auto it = r.participants.rbegin(); it != r.participants.rend(); ++it) {
    (*it)->after_fork_parent();
  }
  r.mutex->unlock();
}

void child() {
  g_pid.store(static_cast<int>(::getpid()), std::memory_order_relaxed);
  g_generation.fetch_add(1, std::memory_order_acq_rel);
  Registry& r = registry();
  r.retired.push_back(r.mutex);  // stays locked; kept, not destroyed
  r.mutex = new std::mutex;
  for (auto it = r.participants.rbegin(); it != r.participants.rend(); ++it) {
    (*it)->after_fork_child();
  }
}

void install_once() {
  static std::once_flag once;
  std::call_once(once, [] {
    g_pid.store(static_cast<int>(::getpid()), std::memory_order_relaxed);
    ::pthread_atfork(prepare, parent, child);
  });
}

}  // namespace

int current_pid() {
  install_once();
  return g_pid.load(std::memory_order_relaxed);
}

std::uint64_t fork_generation() {
  install_once();
  return g_generation.load(std::memory_order_acquire);
}

void register_fork_participant(ForkParticipant* p) {
  install_once();
  Registry& r = registry();
  const std::lock_guard<std::mutex> lock(*r.mutex);
  r.participants.push_back(p);
}

void unregister_fork_participant(ForkParticipant* p) {
  install_once();
  Registry& r = registry();
  const std::lock_guard<std::mutex> lock(*r.mutex);
  r.participants.erase(std::remove(r.participants.begin(), r.participants.end(), p),
                       r.participants.end());
}

}  // namespace holdfast::base
