// Process identity across fork(): a cached pid, a fork generation, and hooks run around fork().
#pragma once

#include <cstdint>

namespace holdfast::base {

/// The calling process's id, cached (no system call); refreshed in the child after fork().
int current_pid();

/// 0 in the process that first used holdfast, bumped in every child right after fork(). Comparing
/// it with a saved value is the cheap "was I forked since?" check used on every request.
std::uint64_t fork_generation();

/// An object that must act around fork(), e.g. a Client parking its loop threads so that the
/// child inherits its state between two loop tasks. Registered participants are called from the
/// pthread_atfork handlers, in the thread that calls fork(), with the registry locked (so no
/// participant is registered or unregistered meanwhile).
class ForkParticipant {
 public:
  /// Before fork(): bring the object to a consistent state (lock, park threads). Must be bounded.
  virtual void before_fork() = 0;
  /// In the parent after fork(): undo before_fork().
  virtual void after_fork_parent() = 0;
  /// In the child after fork(), single-threaded: only mark state as inherited and replace locks;
  /// the real clean-up is done lazily on first use.
  virtual void after_fork_child() = 0;

 protected:
  ~ForkParticipant() = default;
};

/// Adds `p` (not owned) to the participants; installs the pthread_atfork handlers on first call.
void register_fork_participant(ForkParticipant* p);
/// Removes `p`; after return no handler runs on it. No effect if not registered.
void unregister_fork_participant(ForkParticipant* p);

}  // namespace holdfast::base
