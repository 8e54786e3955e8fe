// Fault-test fixture: a client - middlebox - server path in three network namespaces, and child
// processes in them.
#pragma once

#include <fcntl.h>
#include <sched.h>
#include <signal.h>
#include <sys/types.h>
#include <sys/wait.h>
#include <unistd.h>

#include <atomic>
#include <cerrno>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <functional>
#include <optional>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

namespace holdfast::fault {

using Clock = std::chrono::steady_clock;
using namespace std::chrono_literals;

/// The addresses of the path (scripts/fault/netns.sh builds it).
inline constexpr const char* kClientAddress = "10.200.1.2";
inline constexpr const char* kServerAddress = "10.200.2.2";
inline constexpr int kServerPort = 8080;

/// Runs a shell command quietly; returns its exit status (-1 if it did not exit normally).
inline int shell(const std::string& command) {
  const int status = std::system((command + " >/dev/null 2>&1").c_str());
  return WIFEXITED(status) ? WEXITSTATUS(status) : -1;
}

/// The standard output of a shell command (stderr discarded), at most 64 KiB.
inline std::string shell_output(const std::string& command) {
  std::string out;
  FILE* pipe = ::popen((command + " 2>/dev/null").c_str(), "r");
  if (pipe == nullptr) {
    return out;
  }
  char buffer[4096];
  std::size_t n = 0;
  while (out.size() < 65536 && (n = std::fread(buffer, 1, sizeof buffer, pipe)) > 0) {
    out.append(buffer, n);
  }
  ::pclose(pipe);
  return out;
}

/// Removes namespaces left by fault-test processes that no longer exist (names "hff<pid>x<n>-?").
inline void remove_stale_namespaces() {
  std::istringstream lines(shell_output("ip netns list"));
  std::string line;
  for (int i = 0; i < 1000 && std::getline(lines, line); ++i) {
    const std::string name = line.substr(0, line.find(' '));
    if (name.rfind("hff", 0) != 0) {
      continue;
    }
    const pid_t owner = static_cast<pid_t>(std::atol(name.c_str() + 3));
    if (owner > 0 && ::kill(owner, 0) != 0 && errno == ESRCH) {
      shell("ip netns del " + name);
    }
  }
}

/// Three namespaces (client, middlebox, server) joined by veth pairs; the middlebox forwards only
/// tracked TCP flows, and forgets an idle flow after `conntrack_timeout` seconds, after which that
/// flow's packets are dropped silently. Removed by the destructor.
class NetnsPath {
 public:
  explicit NetnsPath(int conntrack_timeout) : timeout_(conntrack_timeout) {
    static std::atomic<int> counter{0};
    prefix_ = "hff" + std::to_string(::getpid()) + "x" + std::to_string(counter++);
  }
  ~NetnsPath() { shell(script() + " down " + prefix_); }
  NetnsPath(const NetnsPath&) = delete;
  NetnsPath& operator=(const NetnsPath&) = delete;

  /// Builds the path; returns "" or why it could not be built (the caller skips the test then).
  std::string build() {
    if (::geteuid() != 0) {
      return "not root";
    }
    if (shell("command -v ip") != 0 || shell("command -v nft") != 0) {
      return "`ip` or `nft` not installed";
    }
    remove_stale_namespaces();
    const std::string log = "/tmp/" + prefix_ + ".log";
    const int rc = std::system(
        (script() + " up " + prefix_ + " " + std::to_string(timeout_) + " >" + log + " 2>&1")
            .c_str());
    if (rc != 0) {
      std::ifstream in(log);
      std::stringstream text;
      text << in.rdbuf();
      std::remove(log.c_str());
      return "scripts/fault/netns.sh up failed: " + text.str();
    }
    std::remove(log.c_str());
    return "";
  }

  [[nodiscard]] std::string client() const { return prefix_ + "-c"; }
  [[nodiscard]] std::string middlebox() const { return prefix_ + "-m"; }
  [[nodiscard]] std::string server() const { return prefix_ + "-s"; }

  /// Makes the middlebox answer a packet of a flow it forgot with a TCP reset to its sender
  /// instead of dropping it silently (as AWS NLB does after its idle timeout). After build().
  [[nodiscard]] bool reset_expired_flows() const {
    return shell("ip netns exec " + middlebox() +
                 " nft insert rule inet holdfast_fault forward ct state invalid meta l4proto tcp "
                 "reject with tcp reset") == 0;
  }

  /// Unplugs the client: deletes its veth pair, so nothing it sends or is sent reaches anyone.
  [[nodiscard]] bool unplug_client() const {
    return shell("ip -n " + middlebox() + " link del vmc") == 0;
  }

 private:
  static std::string script() {
    return std::string(HOLDFAST_SOURCE_DIR) + "/scripts/fault/netns.sh";
  }

  int timeout_;
  std::string prefix_;
};

/// A child process (`ip netns exec NS argv...`), killed and reaped by the destructor. Its stdout
/// and stderr go to one temporary file (output()).
class Child {
 public:
  Child(const std::string& netns, const std::vector<std::string>& argv) {
    char path[] = "/tmp/hff-child-XXXXXX";
    const int fd = ::mkstemp(path);
    log_ = path;
    std::vector<std::string> args{"ip", "netns", "exec", netns};
    args.insert(args.end(), argv.begin(), argv.end());
    pid_ = ::fork();
    if (pid_ == 0) {
      ::dup2(fd, 1);
      ::dup2(fd, 2);
      std::vector<char*> raw;
      for (auto& a : args) {
        raw.push_back(a.data());
      }
      raw.push_back(nullptr);
      ::execvp("ip", raw.data());
      ::_exit(127);
    }
    ::close(fd);
  }
  ~Child() {
    kill();
    std::remove(log_.c_str());
  }
  Child(const Child&) = delete;
  Child& operator=(const Child&) = delete;

  /// The process id (the namespaced program itself: `ip netns exec` execs it).
  [[nodiscard]] pid_t pid() const { return pid_; }

  /// Waits up to `limit` for the exit; the exit code, 128+signal, or nullopt if still running.
  std::optional<int> wait_for(std::chrono::milliseconds limit) {
    const auto end = Clock::now() + limit;
    while (pid_ > 0) {
      int status = 0;
      if (::waitpid(pid_, &status, WNOHANG) == pid_) {
        pid_ = -1;
        exit_ = WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
        break;
      }
      if (Clock::now() >= end) {
        return std::nullopt;
      }
      std::this_thread::sleep_for(20ms);
    }
    return exit_;
  }

  /// Kills (SIGKILL) and reaps the process if it still runs.
  void kill() {
    if (pid_ > 0) {
      ::kill(pid_, SIGKILL);
      int status = 0;
      ::waitpid(pid_, &status, 0);
      pid_ = -1;
    }
  }

  /// Everything the process wrote so far.
  [[nodiscard]] std::string output() const {
    std::ifstream in(log_);
    std::stringstream text;
    text << in.rdbuf();
    return text.str();
  }

 private:
  pid_t pid_ = -1;
  std::optional<int> exit_;
  std::string log_;
};

/// The URL of `path` (e.g. "/delay/3") on the `holdfast serve` of a NetnsPath's server namespace.
inline std::string server_url(const std::string& path) {
  return "http://" + std::string(kServerAddress) + ":" + std::to_string(kServerPort) + path;
}

/// The command line of `holdfast serve --plain` on the server address, plus `flags`.
inline std::vector<std::string> serve_argv(const std::vector<std::string>& flags = {}) {
  std::vector<std::string> argv{
      HOLDFAST_CLI_PATH,          "serve", "--plain", "--bind", kServerAddress, "--port",
      std::to_string(kServerPort)};
  argv.insert(argv.end(), flags.begin(), flags.end());
  return argv;
}

/// Polls `ready` every 50 ms until it returns true or `limit` passes; returns its last answer.
inline bool wait_until(const std::function<bool()>& ready, std::chrono::milliseconds limit) {
  const auto end = Clock::now() + limit;
  while (!ready()) {
    if (Clock::now() >= end) {
      return false;
    }
    std::this_thread::sleep_for(50ms);
  }
  return true;
}

/// True once a TCP socket listens on kServerPort in namespace `netns`.
inline bool server_listening(const std::string& netns) {
  return shell_output("ip netns exec " + netns +
                      " ss -Hltn 'sport = :" + std::to_string(kServerPort) + "'")
             .find("LISTEN") != std::string::npos;
}

/// The number of sockets process `pid` holds open (from /proc/PID/fd).
inline int open_sockets(pid_t pid) {
  const std::string out = shell_output("ls -l /proc/" + std::to_string(pid) + "/fd");
  int count = 0;
  for (std::size_t at = out.find("socket:"); at != std::string::npos;
       at = out.find("socket:", at + 1)) {
    ++count;
  }
  return count;
}

/// What a function run in a namespace reported: its exit code and the text it wrote.
struct NetnsResult {
  int code = -1;
  std::string text;
};

/// Appends what can be read now from non-blocking descriptor `fd` to `text`.
inline void drain(int fd, std::string& text) {
  char buffer[4096];
  for (ssize_t n = 0; (n = ::read(fd, buffer, sizeof buffer)) > 0;) {
    text.append(buffer, static_cast<std::size_t>(n));
  }
}

/// Runs `body` in a forked child that first joined namespace `netns` (setns); the child's text
/// goes back through a pipe. The child is killed after `limit`. `body` returns the exit code.
inline NetnsResult run_in_netns(const std::string& netns,
                                const std::function<int(std::string& text)>& body,
                                std::chrono::milliseconds limit) {
  int fds[2];
  if (::pipe(fds) != 0) {
    return {-1, "pipe failed"};
  }
  const pid_t pid = ::fork();
  if (pid == 0) {
    ::close(fds[0]);
    std::string text;
    int code = 100;
    const int ns = ::open(("/var/run/netns/" + netns).c_str(), O_RDONLY | O_CLOEXEC);
    if (ns < 0 || ::setns(ns, CLONE_NEWNET) != 0) {
      text = "setns into " + netns + " failed";
    } else {
      code = body(text);
    }
    [[maybe_unused]] const auto n = ::write(fds[1], text.data(), text.size());
    ::_exit(code);
  }
  ::close(fds[1]);
  ::fcntl(fds[0], F_SETFL, O_NONBLOCK);
  NetnsResult result;
  const auto end = Clock::now() + limit;
  int status = 0;
  while (true) {
    drain(fds[0], result.text);
    if (::waitpid(pid, &status, WNOHANG) == pid) {
      drain(fds[0], result.text);
      result.code = WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
      break;
    }
    if (Clock::now() >= end) {
      ::kill(pid, SIGKILL);
      ::waitpid(pid, &status, 0);
      result.text += " [killed: still running after the test's bound]";
      break;
    }
    std::this_thread::sleep_for(20ms);
  }
  ::close(fds[0]);
  return result;
}

}  // namespace holdfast::fault
