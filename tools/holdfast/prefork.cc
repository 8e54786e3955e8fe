// Pre-forked workers: SO_REUSEPORT listeners bound in the parent, one per worker, kept open by the
// parent so that a dead worker's queued connections wait for its replacement (docs/fork.md).
#include "prefork.h"

#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <sys/prctl.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <cstdio>
#include <cstring>
#include <ctime>
#include <utility>

#include "exit_codes.h"
#include "holdfast/error.h"
#include "holdfast/server.h"

namespace holdfast::cli {
namespace {

using Clock = std::chrono::steady_clock;

constexpr auto kReadyTimeout = std::chrono::seconds(15);
// A worker that dies this soon after it started, kMaxQuickDeaths times in a row, is not restarted
// again: it would only crash-loop (e.g. its certificate file was removed).
constexpr auto kQuickDeath = std::chrono::seconds(1);
constexpr int kMaxQuickDeaths = 5;

std::string describe_status(int status) {
  if (WIFSIGNALED(status)) {
    const int sig = WTERMSIG(status);
    return "was killed by signal " + std::to_string(sig) + " (" + ::strsignal(sig) + ")";
  }
  return "exited with status " + std::to_string(WEXITSTATUS(status));
}

const char* signal_name(int sig) { return sig == SIGINT ? "SIGINT" : "SIGTERM"; }

// One worker slot: its listener (held open by the parent) and the process serving it.
struct Slot {
  int listen_fd = -1;  // -1 once the slot was given up
  pid_t pid = -1;      // -1 while no process serves the slot
  Clock::time_point started;
  int quick_deaths = 0;
};

class Supervisor {
 public:
  // Takes over the descriptors of `listeners`.
  Supervisor(Listeners listeners, const WorkerMain& worker, std::chrono::milliseconds stop_timeout)
      : worker_(worker), stop_timeout_(stop_timeout), parent_(::getpid()) {
    for (const int fd : listeners.fds) {
      slots_.push_back(Slot{fd, -1, {}, 0});
    }
    listeners.fds.clear();  // owned by the slots now
  }

  int run(const std::function<void()>& on_ready) {
    if (const int code = start_all(); code != 0) {
      return code;
    }
    on_ready();
    sigset_t signals;
    sigemptyset(&signals);
    sigaddset(&signals, SIGINT);
    sigaddset(&signals, SIGTERM);
    sigaddset(&signals, SIGCHLD);
    for (;;) {
      int sig = 0;
      if (::sigwait(&signals, &sig) != 0) {
        continue;
      }
      if (sig != SIGCHLD) {
        std::fprintf(stderr, "holdfast: %s received, stopping %zu workers\n", signal_name(sig),
                     live_workers());
        return stop(sig);
      }
      reap(true);
      if (live_slots() == 0) {
        std::fprintf(stderr, "holdfast: no worker left, exiting\n");
        stop(SIGTERM);
        return static_cast<int>(ExitCode::failure);
      }
    }
  }

 private:
  // Forks a worker for slot `i`; returns the read end of its ready pipe, or -1 if fork failed.
  int spawn(std::size_t i) {
    int ready[2];
    if (::pipe2(ready, O_CLOEXEC) != 0) {
      return -1;
    }
    const pid_t pid = ::fork();
    if (pid == 0) {
      ::close(ready[0]);
      run_child(i, ready[1]);
    }
    ::close(ready[1]);
    if (pid < 0) {
      ::close(ready[0]);
      return -1;
    }
    slots_[i].pid = pid;
    slots_[i].started = Clock::now();
    return ready[0];
  }

  [[noreturn]] void run_child(std::size_t i, int ready_fd) {
    // The worker dies with the supervisor instead of serving on unsupervised.
    ::prctl(PR_SET_PDEATHSIG, SIGTERM);
    if (::getppid() != parent_) {
      ::_exit(static_cast<int>(ExitCode::failure));
    }
    for (std::size_t j = 0; j < slots_.size(); ++j) {
      if (j != i && slots_[j].listen_fd >= 0) {
        ::close(slots_[j].listen_fd);  // only its own listener: a given-up one must really close
      }
    }
    const int listen_fd = ::dup(slots_[i].listen_fd);  // the server owns the copy
    ::close(slots_[i].listen_fd);
    const int code = worker_(i, listen_fd, [ready_fd] {
      const char byte = 1;
      [[maybe_unused]] const auto n = ::write(ready_fd, &byte, 1);
      ::close(ready_fd);
    });
    std::fflush(nullptr);
    ::_exit(code);  // the parent's atexit handlers and static objects are not the worker's
  }

  // Starts every worker and waits until each is ready; 0, or the exit code of the failure.
  int start_all() {
    std::vector<pollfd> waiting;
    for (std::size_t i = 0; i < slots_.size(); ++i) {
      const int fd = spawn(i);
      if (fd < 0) {
        std::fprintf(stderr, "holdfast: could not start worker %zu: %s\n", i + 1,
                     std::strerror(errno));
        close_pipes(waiting);
        return abort_start(static_cast<int>(ExitCode::failure));
      }
      waiting.push_back(pollfd{fd, POLLIN, 0});
    }
    const int code = wait_ready(waiting);
    close_pipes(waiting);
    return code == 0 ? 0 : abort_start(code);
  }

  // 0 once every pipe delivered its byte; else the failed worker's exit code.
  int wait_ready(std::vector<pollfd>& waiting) {
    const auto deadline = Clock::now() + kReadyTimeout;
    std::size_t pending = waiting.size();
    while (pending > 0) {
      const auto left =
          std::chrono::duration_cast<std::chrono::milliseconds>(deadline - Clock::now()).count();
      if (left <= 0 || ::poll(waiting.data(), waiting.size(), static_cast<int>(left)) == 0) {
        std::fprintf(stderr, "holdfast: workers not ready after %lld s\n",
                     static_cast<long long>(kReadyTimeout.count()));
        return static_cast<int>(ExitCode::failure);
      }
      for (std::size_t i = 0; i < waiting.size(); ++i) {
        if (waiting[i].fd < 0 || waiting[i].revents == 0) {
          continue;
        }
        char byte = 0;
        if (::read(waiting[i].fd, &byte, 1) != 1) {
          return failed_start_code(i);
        }
        ::close(waiting[i].fd);
        waiting[i].fd = -1;
        --pending;
      }
    }
    return 0;
  }

  // Slot `i` closed its ready pipe without a byte: it exited (its error is on stderr already).
  int failed_start_code(std::size_t i) {
    int status = 0;
    if (::waitpid(slots_[i].pid, &status, 0) != slots_[i].pid) {
      return static_cast<int>(ExitCode::failure);
    }
    slots_[i].pid = -1;
    std::fprintf(stderr, "holdfast: worker %zu %s before it was ready\n", i + 1,
                 describe_status(status).c_str());
    const bool clean_exit = WIFEXITED(status) && WEXITSTATUS(status) != 0;
    return clean_exit ? WEXITSTATUS(status) : static_cast<int>(ExitCode::failure);
  }

  int abort_start(int code) {
    stop(SIGTERM);
    return code;
  }

  static void close_pipes(std::vector<pollfd>& fds) {
    for (pollfd& p : fds) {
      if (p.fd >= 0) {
        ::close(p.fd);
        p.fd = -1;
      }
    }
  }

  // Reaps every exited worker; reports it and, when `restart`, starts its replacement.
  void reap(bool restart) {
    for (;;) {
      int status = 0;
      const pid_t pid = ::waitpid(-1, &status, WNOHANG);
      if (pid <= 0) {
        return;
      }
      for (std::size_t i = 0; i < slots_.size(); ++i) {
        if (slots_[i].pid == pid) {
          slots_[i].pid = -1;
          if (restart) {
            on_death(i, status);
          }
        }
      }
    }
  }

  void on_death(std::size_t i, int status) {
    Slot& slot = slots_[i];
    const bool quick = Clock::now() - slot.started < kQuickDeath;
    slot.quick_deaths = quick ? slot.quick_deaths + 1 : 0;
    if (slot.quick_deaths >= kMaxQuickDeaths) {
      std::fprintf(stderr,
                   "holdfast: worker %zu %s; it died within 1 s of starting %d times in a row: "
                   "not restarted, its share of new connections goes to the others\n",
                   i + 1, describe_status(status).c_str(), kMaxQuickDeaths);
      ::close(slot.listen_fd);
      slot.listen_fd = -1;
      return;
    }
    const int ready = spawn(i);
    if (ready < 0) {
      std::fprintf(stderr, "holdfast: worker %zu %s; restart failed: %s\n", i + 1,
                   describe_status(status).c_str(), std::strerror(errno));
      ::close(slot.listen_fd);
      slot.listen_fd = -1;
      return;
    }
    ::close(ready);  // the replacement is not waited for: its listener queues meanwhile
    std::fprintf(stderr, "holdfast: worker %zu %s; restarted as pid %d\n", i + 1,
                 describe_status(status).c_str(), static_cast<int>(slot.pid));
  }

  // Forwards `sig` to every worker and waits for them (killing any left after stop_timeout_).
  int stop(int sig) {
    for (Slot& slot : slots_) {
      if (slot.listen_fd >= 0) {
        ::close(slot.listen_fd);  // the workers' copies close the listeners for good
        slot.listen_fd = -1;
      }
      if (slot.pid > 0) {
        ::kill(slot.pid, sig);
      }
    }
    const auto deadline = Clock::now() + stop_timeout_;
    while (live_workers() > 0 && Clock::now() < deadline) {
      wait_for_child(deadline);
      reap(false);
    }
    if (live_workers() == 0) {
      return 0;
    }
    for (Slot& slot : slots_) {
      if (slot.pid > 0) {
        std::fprintf(stderr, "holdfast: worker pid %d did not stop in time: killed\n",
                     static_cast<int>(slot.pid));
        ::kill(slot.pid, SIGKILL);
        ::waitpid(slot.pid, nullptr, 0);
        slot.pid = -1;
      }
    }
    return static_cast<int>(ExitCode::failure);
  }

  static void wait_for_child(Clock::time_point deadline) {
    sigset_t chld;
    sigemptyset(&chld);
    sigaddset(&chld, SIGCHLD);
    const auto left = std::chrono::duration_cast<std::chrono::nanoseconds>(deadline - Clock::now());
    if (left.count() <= 0) {
      return;
    }
    timespec timeout{static_cast<time_t>(left.count() / 1'000'000'000),
                     static_cast<long>(left.count() % 1'000'000'000)};
    ::sigtimedwait(&chld, nullptr, &timeout);
  }

  [[nodiscard]] std::size_t live_workers() const {
    std::size_t n = 0;
    for (const Slot& slot : slots_) {
      n += slot.pid > 0 ? 1 : 0;
    }
    return n;
  }

  [[nodiscard]] std::size_t live_slots() const {
    std::size_t n = 0;
    for (const Slot& slot : slots_) {
      n += slot.listen_fd >= 0 ? 1 : 0;
    }
    return n;
  }

  const WorkerMain& worker_;
  std::chrono::milliseconds stop_timeout_;
  pid_t parent_;
  std::vector<Slot> slots_;
};

}  // namespace

Result<Listeners> bind_listeners(const std::string& address, std::uint16_t port, std::size_t n) {
  Listeners out;
  for (std::size_t i = 0; i < n; ++i) {
    auto listener = listen_tcp_socket(address, port, true);
    if (!listener) {
      close_listeners(out);
      return fail(listener.error());
    }
    out.fds.push_back(listener->fd);
    // Port 0: the others bind the port the kernel picked for the first.
    port = listener->port;
    out.port = port;
  }
  return out;
}

void close_listeners(Listeners& listeners) {
  for (const int fd : listeners.fds) {
    ::close(fd);
  }
  listeners.fds.clear();
}

int run_workers(Listeners listeners, const WorkerMain& worker,
                const std::function<void()>& on_ready, std::chrono::milliseconds stop_timeout) {
  Supervisor supervisor(std::move(listeners), worker, stop_timeout);
  return supervisor.run(on_ready);
}

}  // namespace holdfast::cli
