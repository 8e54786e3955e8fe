// Interop test helpers: child processes killed by RAII, command runs with captured output, temp
// dirs, loopback ports. Header-only because the interop executable compiles only *_test.cc files.
#pragma once

#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <poll.h>
#include <signal.h>
#include <spawn.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <array>
#include <cctype>
#include <cerrno>
#include <chrono>
#include <cstdint>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <optional>
#include <sstream>
#include <string>
#include <utility>
#include <vector>

extern char** environ;

namespace holdfast::interop {

using std::chrono::milliseconds;
using SteadyClock = std::chrono::steady_clock;

/// The path of the holdfast CLI under test (HOLDFAST_CLI_PATH), or "" if it was not built.
inline std::string cli_path() { return HOLDFAST_CLI_PATH; }

/// The absolute path of `name` in PATH or in /usr/sbin, /sbin (where Debian puts nginx), or "".
inline std::string find_program(const std::string& name) {
  std::string dirs = std::getenv("PATH") != nullptr ? std::getenv("PATH") : "";
  dirs += ":/usr/local/sbin:/usr/sbin:/sbin";
  std::stringstream in(dirs);
  for (std::string dir; std::getline(in, dir, ':');) {
    std::string path = dir;
    path += '/';
    path += name;
    if (!dir.empty() && ::access(path.c_str(), X_OK) == 0) {
      return path;
    }
  }
  return "";
}

/// A fresh directory under /tmp, removed with everything in it on destruction.
class TempDir {
 public:
  TempDir() {
    std::string pattern =
        (std::filesystem::temp_directory_path() / "holdfast-interop-XXXXXX").string();
    path_ = ::mkdtemp(pattern.data()) != nullptr ? pattern : "";
  }
  ~TempDir() {
    std::error_code ignored;
    std::filesystem::remove_all(path_, ignored);
  }
  TempDir(const TempDir&) = delete;
  TempDir& operator=(const TempDir&) = delete;
  [[nodiscard]] const std::string& path() const { return path_; }
  [[nodiscard]] std::string file(const std::string& name) const { return path_ + "/" + name; }

 private:
  std::string path_;
};

inline bool write_file(const std::string& path, const std::string& content) {
  std::ofstream out(path, std::ios::binary | std::ios::trunc);
  out << content;
  out.close();
  return static_cast<bool>(out);
}

inline std::string read_file(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  return {std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>()};
}

/// A child process in its own process group. The destructor SIGKILLs the whole group and reaps
/// it, so no test leaves a process behind, whether it passed or failed.
class ChildProcess {
 public:
  /// Starts argv[0] (a path) with stdout to a pipe (read_line) and stderr to `stderr_path`
  /// ("" = /dev/null). Returns nullopt if it could not be started.
  static std::optional<ChildProcess> start(const std::vector<std::string>& argv,
                                           const std::string& stderr_path = "") {
    int out[2];
    if (::pipe2(out, O_CLOEXEC) != 0) {
      return std::nullopt;
    }
    posix_spawn_file_actions_t actions;
    posix_spawn_file_actions_init(&actions);
    posix_spawn_file_actions_adddup2(&actions, out[1], STDOUT_FILENO);
    posix_spawn_file_actions_addopen(&actions, STDERR_FILENO,
                                     stderr_path.empty() ? "/dev/null" : stderr_path.c_str(),
                                     O_WRONLY | O_CREAT | O_TRUNC, 0644);
    posix_spawn_file_actions_addopen(&actions, STDIN_FILENO, "/dev/null", O_RDONLY, 0);
    const pid_t pid = spawn(argv, actions);
    posix_spawn_file_actions_destroy(&actions);
    ::close(out[1]);
    if (pid <= 0) {
      ::close(out[0]);
      return std::nullopt;
    }
    return ChildProcess(pid, out[0]);
  }

  /// Starts argv with stdout and stderr both to pipes; used by run().
  static pid_t spawn_with_pipes(const std::vector<std::string>& argv, int out[2], int err[2]) {
    posix_spawn_file_actions_t actions;
    posix_spawn_file_actions_init(&actions);
    posix_spawn_file_actions_adddup2(&actions, out[1], STDOUT_FILENO);
    posix_spawn_file_actions_adddup2(&actions, err[1], STDERR_FILENO);
    posix_spawn_file_actions_addopen(&actions, STDIN_FILENO, "/dev/null", O_RDONLY, 0);
    const pid_t pid = spawn(argv, actions);
    posix_spawn_file_actions_destroy(&actions);
    return pid;
  }

  ChildProcess(ChildProcess&& other) noexcept
      : pid_(std::exchange(other.pid_, -1)),
        out_(std::exchange(other.out_, -1)),
        buffer_(std::move(other.buffer_)) {}
  ChildProcess& operator=(ChildProcess&& other) noexcept {
    if (this != &other) {
      kill();
      if (out_ >= 0) {
        ::close(out_);
      }
      pid_ = std::exchange(other.pid_, -1);
      out_ = std::exchange(other.out_, -1);
      buffer_ = std::move(other.buffer_);
    }
    return *this;
  }
  ChildProcess(const ChildProcess&) = delete;
  ~ChildProcess() {
    kill();
    if (out_ >= 0) {
      ::close(out_);
    }
  }

  [[nodiscard]] pid_t pid() const { return pid_; }

  /// The next line of the child's stdout without its '\n', or nullopt on EOF or after `timeout`.
  std::optional<std::string> read_line(milliseconds timeout) {
    const auto deadline = SteadyClock::now() + timeout;
    for (;;) {
      if (const auto newline = buffer_.find('\n'); newline != std::string::npos) {
        std::string line = buffer_.substr(0, newline);
        buffer_.erase(0, newline + 1);
        return line;
      }
      const auto left = std::chrono::duration_cast<milliseconds>(deadline - SteadyClock::now());
      pollfd p{out_, POLLIN, 0};
      if (left.count() <= 0 || ::poll(&p, 1, static_cast<int>(left.count())) <= 0) {
        return std::nullopt;
      }
      char chunk[4096];
      const ssize_t n = ::read(out_, chunk, sizeof chunk);
      if (n <= 0) {
        return std::nullopt;
      }
      buffer_.append(chunk, static_cast<std::size_t>(n));
    }
  }

  /// True while the child has not exited (reaps it if it has).
  bool is_running() {
    if (pid_ <= 0) {
      return false;
    }
    int status = 0;
    if (::waitpid(pid_, &status, WNOHANG) == pid_) {
      exit_status_ = status;
      pid_ = -1;
      return false;
    }
    return true;
  }

  /// Sends `sig` and waits up to `timeout` for the exit; returns the wait status, or nullopt if
  /// the child is still running.
  std::optional<int> signal_and_wait(int sig, milliseconds timeout) {
    if (pid_ > 0) {
      ::kill(pid_, sig);
    }
    const auto deadline = SteadyClock::now() + timeout;
    while (is_running()) {
      if (SteadyClock::now() > deadline) {
        return std::nullopt;
      }
      ::usleep(10'000);
    }
    return exit_status_;
  }

  /// SIGKILLs the child's process group and reaps the child. Idempotent.
  void kill() {
    if (pid_ > 0) {
      ::kill(-pid_, SIGKILL);
      ::kill(pid_, SIGKILL);
      int status = 0;
      ::waitpid(pid_, &status, 0);
      pid_ = -1;
    }
  }

 private:
  ChildProcess(pid_t pid, int out) : pid_(pid), out_(out) {}

  // The child gets its own process group (so kill() reaches its children too), default signal
  // dispositions (the test runner ignores SIGPIPE) and an empty signal mask.
  static pid_t spawn(const std::vector<std::string>& argv, posix_spawn_file_actions_t& actions) {
    posix_spawnattr_t attr;
    posix_spawnattr_init(&attr);
    sigset_t defaults;
    sigset_t empty;
    sigemptyset(&defaults);
    sigaddset(&defaults, SIGPIPE);
    sigaddset(&defaults, SIGINT);
    sigaddset(&defaults, SIGTERM);
    sigemptyset(&empty);
    posix_spawnattr_setsigdefault(&attr, &defaults);
    posix_spawnattr_setsigmask(&attr, &empty);
    posix_spawnattr_setpgroup(&attr, 0);
    posix_spawnattr_setflags(
        &attr, POSIX_SPAWN_SETPGROUP | POSIX_SPAWN_SETSIGDEF | POSIX_SPAWN_SETSIGMASK);
    std::vector<char*> args;
    args.reserve(argv.size() + 1);
    for (const std::string& arg : argv) {
      args.push_back(const_cast<char*>(arg.c_str()));
    }
    args.push_back(nullptr);
    pid_t pid = -1;
    const int rc = ::posix_spawn(&pid, args[0], &actions, &attr, args.data(), environ);
    posix_spawnattr_destroy(&attr);
    return rc == 0 ? pid : -1;
  }

  pid_t pid_ = -1;
  int out_ = -1;
  std::string buffer_;
  int exit_status_ = 0;
};

/// The outcome of run().
struct RunResult {
  int exit_code = -1;  ///< the exit status, or -1 if killed by a signal or the timeout
  bool timed_out = false;
  std::string out;  ///< everything written to stdout
  std::string err;  ///< everything written to stderr
  milliseconds elapsed{0};
};

/// Runs argv to completion (killed after `timeout`), capturing stdout and stderr.
inline RunResult run(const std::vector<std::string>& argv,
                     milliseconds timeout = milliseconds(30'000)) {
  RunResult result;
  int out[2];
  int err[2];
  if (::pipe2(out, O_CLOEXEC) != 0 || ::pipe2(err, O_CLOEXEC) != 0) {
    return result;
  }
  const auto start = SteadyClock::now();
  const pid_t pid = ChildProcess::spawn_with_pipes(argv, out, err);
  ::close(out[1]);
  ::close(err[1]);
  std::array<pollfd, 2> fds{pollfd{out[0], POLLIN, 0}, pollfd{err[0], POLLIN, 0}};
  std::array<std::string*, 2> sinks{&result.out, &result.err};
  int open_fds = pid > 0 ? 2 : 0;
  while (open_fds > 0) {
    const auto left =
        std::chrono::duration_cast<milliseconds>(start + timeout - SteadyClock::now());
    if (left.count() <= 0 || ::poll(fds.data(), fds.size(), static_cast<int>(left.count())) == 0) {
      result.timed_out = true;
      ::kill(-pid, SIGKILL);
      ::kill(pid, SIGKILL);
      break;
    }
    for (std::size_t i = 0; i < fds.size(); ++i) {
      if (fds[i].fd >= 0 && (fds[i].revents & (POLLIN | POLLHUP | POLLERR)) != 0) {
        char chunk[65536];
        const ssize_t n = ::read(fds[i].fd, chunk, sizeof chunk);
        if (n > 0) {
          sinks[i]->append(chunk, static_cast<std::size_t>(n));
        } else {
          fds[i].fd = -1;
          --open_fds;
        }
      }
    }
  }
  ::close(out[0]);
  ::close(err[0]);
  int status = 0;
  if (pid > 0 && ::waitpid(pid, &status, 0) == pid && WIFEXITED(status)) {
    result.exit_code = WEXITSTATUS(status);
  }
  result.elapsed = std::chrono::duration_cast<milliseconds>(SteadyClock::now() - start);
  return result;
}

/// A loopback port that nothing listens on: bound to 127.0.0.1:0 by the kernel, then released.
/// Also how tests pick a free port for a peer that needs a port number up front (nginx).
inline std::uint16_t unused_port() {
  const int fd = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  sockaddr_in address{};
  address.sin_family = AF_INET;
  address.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  socklen_t length = sizeof address;
  std::uint16_t port = 0;
  if (fd >= 0 && ::bind(fd, reinterpret_cast<sockaddr*>(&address), sizeof address) == 0 &&
      ::getsockname(fd, reinterpret_cast<sockaddr*>(&address), &length) == 0) {
    port = ntohs(address.sin_port);
  }
  if (fd >= 0) {
    ::close(fd);
  }
  return port;
}

/// True once a TCP connect to 127.0.0.1:`port` succeeds, false after `timeout`.
inline bool wait_for_port(std::uint16_t port, milliseconds timeout) {
  const auto deadline = SteadyClock::now() + timeout;
  while (SteadyClock::now() < deadline) {
    const int fd = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    sockaddr_in address{};
    address.sin_family = AF_INET;
    address.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    address.sin_port = htons(port);
    const bool up = ::connect(fd, reinterpret_cast<sockaddr*>(&address), sizeof address) == 0;
    ::close(fd);
    if (up) {
      return true;
    }
    ::usleep(20'000);
  }
  return false;
}

/// `holdfast serve` as a child process, with the URL from its first stdout line.
struct ServeProcess {
  std::optional<ChildProcess> process;
  std::string url;  ///< "https://127.0.0.1:PORT" or "http://..."; empty if it did not start
};

/// Starts `holdfast serve --port 0` with `extra` flags; waits up to 10 s for "listening on URL".
inline ServeProcess start_serve(const std::vector<std::string>& extra,
                                const std::string& stderr_path = "") {
  std::vector<std::string> argv{cli_path(), "serve", "--port", "0"};
  argv.insert(argv.end(), extra.begin(), extra.end());
  ServeProcess serve;
  serve.process = ChildProcess::start(argv, stderr_path);
  if (!serve.process) {
    return serve;
  }
  const std::optional<std::string> line = serve.process->read_line(milliseconds(10'000));
  const std::string prefix = "listening on ";
  if (line && line->rfind(prefix, 0) == 0) {
    serve.url = line->substr(prefix.size());
  }
  return serve;
}

/// Case-insensitive substring search (HTTP field names are case-insensitive).
inline bool contains_nocase(std::string haystack, std::string needle) {
  for (char& c : haystack) {
    c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  }
  for (char& c : needle) {
    c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  }
  return haystack.find(needle) != std::string::npos;
}

}  // namespace holdfast::interop
