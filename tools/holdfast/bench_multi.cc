// `holdfast bench` coordinator: fork()ed side processes talking line by line over pipes; the
// coordinator releases the servers' held answers once every client's connections are open, and
// measures the kernel's socket memory around the opening.
#include "bench_multi.h"

#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <sys/prctl.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <functional>
#include <map>
#include <string>
#include <vector>

#include "bench_side.h"
#include "exit_codes.h"
#include "holdfast/certs.h"

namespace holdfast::cli::bench {
namespace {

using std::chrono::milliseconds;

constexpr milliseconds kStartLimit{30'000};
constexpr milliseconds kOpenBase{20'000};
constexpr milliseconds kOpenPerConnection{4};
constexpr milliseconds kMargin{20'000};
constexpr std::size_t kOpenWindow = 128;  // handshakes in flight per client process

bool write_all(int fd, const std::string& text) {
  std::size_t done = 0;
  while (done < text.size()) {
    const ssize_t n = ::write(fd, text.data() + done, text.size() - done);
    if (n < 0 && errno == EINTR) {
      continue;
    }
    if (n <= 0) {
      return false;
    }
    done += static_cast<std::size_t>(n);
  }
  return true;
}

// The Control of a forked side: commands come from the coordinator on `in`, lines go out on `out`.
class PipeControl : public Control {
 public:
  PipeControl(int in, int out) : in_(in), out_(out) {}
  bool wait_for(const char* command, const std::function<bool()>& /*local*/) override {
    for (;;) {
      const std::size_t eol = buffer_.find('\n');
      if (eol != std::string::npos) {
        const std::string line = buffer_.substr(0, eol);
        buffer_.erase(0, eol + 1);
        if (line == command) {
          return true;
        }
        continue;
      }
      char chunk[256];
      const ssize_t n = ::read(in_, chunk, sizeof chunk);
      if (n < 0 && errno == EINTR) {
        continue;
      }
      if (n <= 0) {
        return false;  // the coordinator is gone
      }
      buffer_.append(chunk, static_cast<std::size_t>(n));
    }
  }
  void send(const std::string& line) override { write_all(out_, line); }

 private:
  int in_;
  int out_;
  std::string buffer_;
};

// One forked side process as the coordinator sees it.
struct Child {
  pid_t pid = -1;
  int to_child = -1;
  int from_child = -1;
  bool is_client = false;
  std::string buffer;
  std::map<std::string, Line> got;  // the last line of each event
  bool eof = false;
};

// Every child of the run; on destruction closes the pipes (a child seeing EOF ends its run), waits
// a little, then SIGKILLs and reaps whatever is left.
class Children {
 public:
  Children() = default;
  Children(const Children&) = delete;
  Children& operator=(const Children&) = delete;
  ~Children() {
    for (Child& c : all_) {
      ::close(c.to_child);
      ::close(c.from_child);
    }
    const auto end = Clock::now() + milliseconds(10'000);
    for (Child& c : all_) {
      while (c.pid > 0 && ::waitpid(c.pid, nullptr, WNOHANG) == 0) {
        if (Clock::now() >= end) {
          ::kill(c.pid, SIGKILL);
          ::waitpid(c.pid, nullptr, 0);
          break;
        }
        ::usleep(10'000);
      }
    }
  }
  std::vector<Child>& all() { return all_; }

  // Forks a child running `body` with a PipeControl; false if the pipes or fork failed.
  bool spawn(bool is_client, const std::function<int(Control&)>& body) {
    int down[2];
    int up[2];
    if (::pipe2(down, O_CLOEXEC) != 0 || ::pipe2(up, O_CLOEXEC) != 0) {
      return false;
    }
    const pid_t parent = ::getpid();
    std::fflush(nullptr);
    const pid_t pid = ::fork();
    if (pid < 0) {
      return false;
    }
    if (pid == 0) {
      ::prctl(PR_SET_PDEATHSIG, SIGKILL);
      if (::getppid() != parent) {
        std::_Exit(1);
      }
      for (const Child& c : all_) {  // a sibling's pipe left open here would hide its EOF
        ::close(c.to_child);
        ::close(c.from_child);
      }
      ::close(down[1]);
      ::close(up[0]);
      PipeControl control(down[0], up[1]);
      const int code = body(control);
      std::fflush(nullptr);
      std::_Exit(code);
    }
    ::close(down[0]);
    ::close(up[1]);
    Child c;
    c.pid = pid;
    c.to_child = down[1];
    c.from_child = up[0];
    c.is_client = is_client;
    all_.push_back(std::move(c));
    return true;
  }

  // Sends `command` to every server (or every client).
  void tell(bool clients, const std::string& command) {
    for (Child& c : all_) {
      if (c.is_client == clients) {
        write_all(c.to_child, command + "\n");
      }
    }
  }

  // Reads what the children sent until every server (or client) has sent an `event` line, or a
  // child ended, or `deadline`. `tick` runs between reads (the progress line).
  bool await(bool clients, const std::string& event, Clock::time_point deadline,
             const std::function<void()>& tick) {
    for (;;) {
      bool all = true;
      for (const Child& c : all_) {
        if (c.is_client == clients && !c.got.contains(event)) {
          all = false;
          if (c.eof) {
            return false;
          }
        }
      }
      if (all) {
        return true;
      }
      if (Clock::now() >= deadline) {
        return false;
      }
      read_some(milliseconds(50));
      tick();
    }
  }

  // The sum of `key` over the clients' last progress lines.
  [[nodiscard]] double client_progress(const std::string& key) const {
    double total = 0;
    for (const Child& c : all_) {
      const auto it = c.got.find("progress");
      if (c.is_client && it != c.got.end()) {
        total += it->second.number(key);
      }
    }
    return total;
  }

 private:
  void read_some(milliseconds wait) {
    std::vector<pollfd> fds;
    for (const Child& c : all_) {
      fds.push_back({c.eof ? -1 : c.from_child, POLLIN, 0});
    }
    if (::poll(fds.data(), fds.size(), static_cast<int>(wait.count())) <= 0) {
      return;
    }
    for (std::size_t i = 0; i < fds.size(); ++i) {
      if (fds[i].revents != 0) {
        read_child(all_[i]);
      }
    }
  }
  static void read_child(Child& c) {
    char chunk[65536];
    const ssize_t n = ::read(c.from_child, chunk, sizeof chunk);
    if (n <= 0) {
      c.eof = n == 0 || errno != EINTR;
      return;
    }
    c.buffer.append(chunk, static_cast<std::size_t>(n));
    for (std::size_t eol = c.buffer.find('\n'); eol != std::string::npos;
         eol = c.buffer.find('\n')) {
      Line line = Line::parse(c.buffer.substr(0, eol));
      c.buffer.erase(0, eol + 1);
      c.got[line.event] = std::move(line);
    }
  }
  std::vector<Child> all_;
};

// The certificate's PEM in a temp file for the clients' ca_file; removed on destruction.
class TempCertFile {
 public:
  explicit TempCertFile(const std::string& pem) {
    char pattern[] = "/tmp/holdfast-bench-XXXXXX";
    const int fd = ::mkstemp(pattern);
    if (fd < 0) {
      return;
    }
    const bool ok = write_all(fd, pem);
    ::close(fd);
    path_ = ok ? pattern : "";
  }
  ~TempCertFile() {
    if (!path_.empty()) {
      ::unlink(path_.c_str());
    }
  }
  TempCertFile(const TempCertFile&) = delete;
  TempCertFile& operator=(const TempCertFile&) = delete;
  [[nodiscard]] const std::string& path() const { return path_; }

 private:
  std::string path_;
};

// Splits `total` into `parts` shares that differ by at most one.
std::size_t share(std::size_t total, std::size_t parts, std::size_t index) {
  return total / parts + (index < total % parts ? 1 : 0);
}

// Starts the servers one by one: the first picks the port, the others join it (SO_REUSEPORT).
bool start_servers(Children& children, const MultiPlan& plan, const GeneratedCertificate& cert,
                   std::uint16_t& port) {
  for (std::size_t i = 0; i < plan.processes; ++i) {
    ServerPlan s;
    s.threads = plan.threads;
    s.port = port;
    s.reuse_port = true;
    s.cert_pem = cert.cert_pem;
    s.key_pem = cert.key_pem;
    s.body_size = plan.body_size;
    s.expected = plan.connections;
    s.h2 = plan.h2;
    if (!children.spawn(false, [s](Control& c) { return run_server_side(s, c); })) {
      print_error("could not fork a server process");
      return false;
    }
    if (!children.await(false, "listening", Clock::now() + kStartLimit, [] {})) {
      print_error("a server process did not start");
      return false;
    }
    port = static_cast<std::uint16_t>(children.all().back().got["listening"].number("port"));
  }
  return children.await(false, "ready", Clock::now() + kStartLimit, [] {});
}

bool start_clients(Children& children, const MultiPlan& plan, const std::string& url,
                   const std::string& ca_file, milliseconds open_budget) {
  for (std::size_t i = 0; i < plan.processes; ++i) {
    ClientPlan c;
    c.base_url = url;
    c.ca_file = ca_file;
    c.bind_address = client_source_address(i);
    c.threads = plan.threads;
    c.connections = share(plan.connections, plan.processes, i);
    c.busy = std::max<std::size_t>(1, share(plan.busy, plan.processes, i));
    c.duration = plan.duration;
    c.max_requests = plan.max_requests == 0 ? 0 : share(plan.max_requests, plan.processes, i);
    c.open_window = kOpenWindow;
    c.resumption = plan.resumption;
    c.h2 = plan.h2;
    c.streams = plan.streams;
    c.open_budget = open_budget;
    if (!children.spawn(true, [c](Control& control) { return run_client_side(c, control); })) {
      print_error("could not fork a client process");
      return false;
    }
  }
  if (!children.await(true, "ready", Clock::now() + kStartLimit, [] {})) {
    print_error("a client process did not start (its error is above)");
    return false;
  }
  return true;
}

}  // namespace

std::string client_source_address(std::size_t index) {
  return "127.0.0." + std::to_string(2 + index);
}

namespace {

// Opening, idle measurement, keep-alive and stop, once every process is ready.
bool drive(Children& children, const MultiPlan& plan, milliseconds open_budget, Summary& summary) {
  Progress progress;
  const auto show = [&](const char* phase) {
    return [&children, &progress, phase] {
      progress.show(phase, static_cast<std::uint64_t>(children.client_progress("open")),
                    static_cast<std::uint64_t>(children.client_progress("ok")),
                    static_cast<std::uint64_t>(children.client_progress("errors")));
    };
  };
  const KernelSnapshot before = take_kernel_snapshot();
  children.tell(true, "open");
  const auto open_end = Clock::now() + open_budget + kMargin;
  bool ok = children.await(true, "written", open_end, show("opening"));
  children.tell(false, "release");
  ok = ok && children.await(true, "idle", open_end + kMargin, show("answering"));
  const KernelSnapshot idle = take_kernel_snapshot();
  summary.has_kernel = true;
  summary.kernel_slab = static_cast<double>(idle.slab - before.slab);
  summary.kernel_tcp_mem = static_cast<double>(idle.tcp_mem - before.tcp_mem);
  children.tell(false, "measure");
  ok = ok && children.await(false, "idle", Clock::now() + kMargin, [] {});
  children.tell(true, "go");
  const auto keepalive_end =
      Clock::now() +
      std::chrono::duration_cast<milliseconds>(std::chrono::duration<double>(plan.duration)) +
      kMargin;
  ok = ok && children.await(true, "done", keepalive_end, show("keep-alive"));
  children.tell(false, "stop");
  ok = ok && children.await(false, "done", Clock::now() + kMargin, [] {});
  children.tell(true, "exit");
  progress.done();
  return ok;
}

}  // namespace

int run_multi_process(const MultiPlan& plan, Summary& summary) {
  summary.processes = plan.processes;
  summary.threads = plan.threads;
  summary.busy = plan.busy;
  summary.streams = plan.h2 ? plan.streams : 1;
  summary.protocol = plan.h2 ? "h2" : "http/1.1";
  summary.body_size = plan.body_size;
  summary.wanted = plan.connections;
  const Result<GeneratedCertificate> cert =
      generate_self_signed_certificate({"localhost"}, {"127.0.0.1"}, 1);
  if (!cert) {
    print_error(cert.error(), "");
    return 1;
  }
  const TempCertFile ca(cert->cert_pem);
  if (ca.path().empty()) {
    print_error("could not write the certificate to a temporary file under /tmp");
    return 1;
  }
  const milliseconds open_budget =
      kOpenBase + kOpenPerConnection * static_cast<std::int64_t>(plan.connections);
  Children children;
  std::uint16_t port = 0;
  if (!start_servers(children, plan, *cert, port)) {
    return 1;
  }
  summary.target = "https://127.0.0.1:" + std::to_string(port);
  if (!start_clients(children, plan, summary.target, ca.path(), open_budget)) {
    return 1;
  }
  const bool ok = drive(children, plan, open_budget, summary);
  for (Child& c : children.all()) {
    if (c.is_client) {
      summary.add_client(c.got["idle"], c.got["done"]);
    } else {
      summary.add_server(c.got["idle"], c.got["done"]);
    }
  }
  if (!ok) {
    print_error("a bench process failed or a phase ran out of time (see above)");
    return 1;
  }
  return 0;
}

}  // namespace holdfast::cli::bench
