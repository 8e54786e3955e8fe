// Benchmark: CPU per new TLS connection and per request while 100, 1,000 or 10,000 other
// connections are live. The server runs in a child process (each side stays under the open-file
// limit) and reports its CPU time over a pipe; each N runs in a fresh pair of processes.
#include <spawn.h>
#include <sys/resource.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <future>
#include <memory>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include "holdfast/certs.h"
#include "holdfast/client.h"
#include "holdfast/error.h"
#include "holdfast/init.h"
#include "holdfast/server.h"

extern char** environ;

namespace {

using Clock = std::chrono::steady_clock;
using namespace std::chrono_literals;

constexpr std::size_t kNewConnections = 200;  // opened per setup round
constexpr std::size_t kRequests = 20'000;     // per dispatch round
constexpr std::size_t kConcurrency = 50;      // requests in flight during dispatch
constexpr std::size_t kWave = 250;            // connections opened at once while filling up
constexpr int kRounds = 5;

std::int64_t cpu_us() {
  rusage u{};
  ::getrusage(RUSAGE_SELF, &u);
  return (u.ru_utime.tv_sec + u.ru_stime.tv_sec) * 1'000'000LL + u.ru_utime.tv_usec +
         u.ru_stime.tv_usec;
}

// The server child's replies on its pipe: what was asked for.
struct Report {
  std::int64_t cpu_us = 0;
  std::uint64_t held = 0;
  std::uint64_t connections_open = 0;
};

// The server child: /hold requests are answered only on command; everything else at once.
class ServerChild {
 public:
  [[noreturn]] static void run(int commands, int replies, const holdfast::GeneratedCertificate& c) {
    ServerChild self;
    holdfast::ServerOptions so;
    so.tls = holdfast::ServerTlsOptions{};
    so.tls->cert_pem = c.cert_pem;
    so.tls->key_pem = c.key_pem;
    so.tls->min_version = holdfast::TlsVersion::tls1_3;
    so.timeouts.keepalive_idle = std::chrono::minutes(30);
    so.timeouts.header_read = std::chrono::minutes(30);
    so.timeouts.tls_handshake = std::chrono::minutes(2);  // a loaded machine must not fail a run
    so.limits.max_connections = 0;
    auto server = holdfast::Server::start(
        so, [&self](const holdfast::Request& r, const holdfast::ResponseWriter& w) {
          self.handle(r, w);
        });
    if (!server) {
      std::fprintf(stderr, "server: %s\n", holdfast::describe(server.error()).c_str());
      ::_exit(1);
    }
    const std::uint16_t port = (*server)->port();
    [[maybe_unused]] auto n = ::write(replies, &port, sizeof port);
    char command = 0;
    while (::read(commands, &command, 1) == 1 && command != 'q') {
      if (command == 'r') {
        self.release();
      }
      Report report{cpu_us(), self.held(), (*server)->stats().connections_open};
      n = ::write(replies, &report, sizeof report);
    }
    (*server)->shutdown(std::chrono::milliseconds(0));
    ::_exit(0);
  }

 private:
  void handle(const holdfast::Request& r, const holdfast::ResponseWriter& w) {
    if (r.url == "/hold") {
      const std::lock_guard lock(mutex_);
      held_.push_back(w);
      return;
    }
    holdfast::Response response;
    response.body = "ok";
    w.send(std::move(response));
  }

  void release() {
    std::vector<holdfast::ResponseWriter> writers;
    {
      const std::lock_guard lock(mutex_);
      writers.swap(held_);
    }
    for (const auto& w : writers) {
      holdfast::Response response;
      response.body = "released";
      w.send(std::move(response));
    }
  }

  std::uint64_t held() {
    const std::lock_guard lock(mutex_);
    return held_.size();
  }

  std::mutex mutex_;
  std::vector<holdfast::ResponseWriter> held_;
};

class Bench {
 public:
  Bench(int commands, int replies, const std::string& url, const std::string& ca, std::size_t n)
      : commands_(commands), replies_(replies), url_(url) {
    holdfast::ClientOptions co;
    co.tls.ca_file = ca;
    co.tls.min_version = holdfast::TlsVersion::tls1_3;
    co.tls.session_resumption = false;  // every setup is a full handshake, as the first one
    co.pool.max_per_origin = n + kNewConnections * kRounds + kConcurrency + 64;
    co.pool.max_idle_per_origin = co.pool.max_per_origin;
    co.pool.idle_timeout = std::chrono::minutes(30);
    co.timeouts.deadline = std::chrono::minutes(30);  // held requests wait for the whole run
    co.timeouts.connect = std::chrono::minutes(2);
    co.timeouts.tls_handshake = std::chrono::minutes(2);
    co.retry = false;
    co.force_http1 = true;  // one request per connection: N held requests hold N connections
    client_ = std::make_unique<holdfast::Client>(co);
  }

  Report ask(char command) {
    Report r;
    if (::write(commands_, &command, 1) != 1 || ::read(replies_, &r, sizeof r) != sizeof r) {
      std::fprintf(stderr, "server child gone\n");
      std::exit(1);
    }
    return r;
  }

  // Sends `count` /hold requests (each needs a new connection: the others are all busy) and
  // waits until the server holds `target` requests in all.
  bool hold(std::size_t count, std::uint64_t target) {
    for (std::size_t i = 0; i < count; ++i) {
      holdfast::Request r;
      r.url = url_ + "/hold";
      client_->request_async(std::move(r), {}, [this](holdfast::Result<holdfast::Response> res) {
        if (!res || res->status != 200) {
          if (errors_.fetch_add(1) == 0) {
            first_error_ =
                ": " + (res ? std::to_string(res->status) : holdfast::describe(res.error()));
          }
        }
      });
    }
    const auto deadline = Clock::now() + 120s;
    for (Report r = ask('h'); r.held < target; r = ask('h')) {
      if (Clock::now() > deadline || errors_.load() > 0) {
        std::fprintf(
            stderr, "held %llu of %llu, server open %llu, client opened %llu, errors %zu%s\n",
            static_cast<unsigned long long>(r.held), static_cast<unsigned long long>(target),
            static_cast<unsigned long long>(r.connections_open),
            static_cast<unsigned long long>(client_->stats().connections_opened), errors_.load(),
            first_error_.c_str());
        return false;
      }
      std::this_thread::sleep_for(5ms);  // polling costs CPU on both sides: keep it rare
    }
    return true;
  }

  // Opens `n` live connections, each with a request held in flight, in waves.
  bool fill(std::size_t n) {
    for (std::size_t done = 0; done < n;) {
      const std::size_t wave = std::min(kWave, n - done);
      done += wave;
      if (!hold(wave, done)) {
        return false;
      }
    }
    return true;
  }

  // CPU (client + server, microseconds) to open kNewConnections new connections.
  std::pair<std::int64_t, std::int64_t> setup_round(std::uint64_t live) {
    const std::int64_t c0 = cpu_us();
    const std::int64_t s0 = ask('h').cpu_us;
    if (!hold(kNewConnections, live + kNewConnections)) {
      std::exit(1);
    }
    const std::int64_t c1 = cpu_us();
    const std::int64_t s1 = ask('h').cpu_us;
    return {c1 - c0, s1 - s0};
  }

  // CPU (client, server) for kRequests requests over idle pooled connections, kConcurrency
  // at a time.
  std::pair<std::int64_t, std::int64_t> dispatch_round() {
    std::atomic<std::size_t> issued{0};
    std::promise<void> all_done;
    std::atomic<std::size_t> completed{0};
    const std::int64_t c0 = cpu_us();
    const std::int64_t s0 = ask('h').cpu_us;
    std::function<void()> issue = [&] {
      if (issued.fetch_add(1) >= kRequests) {
        return;
      }
      holdfast::Request r;
      r.url = url_ + "/";
      client_->request_async(std::move(r), {}, [&](holdfast::Result<holdfast::Response> res) {
        if (!res || res->status != 200) {
          errors_.fetch_add(1);
        }
        if (completed.fetch_add(1) + 1 == kRequests) {
          all_done.set_value();
          return;
        }
        issue();
      });
    };
    for (std::size_t i = 0; i < kConcurrency; ++i) {
      issue();
    }
    all_done.get_future().wait();
    const std::int64_t c1 = cpu_us();
    const std::int64_t s1 = ask('h').cpu_us;
    return {c1 - c0, s1 - s0};
  }

  [[nodiscard]] std::size_t errors() const { return errors_.load(); }
  [[nodiscard]] std::uint64_t opened() const { return client_->stats().connections_opened; }

 private:
  int commands_;
  int replies_;
  std::string url_;
  std::unique_ptr<holdfast::Client> client_;
  std::atomic<std::size_t> errors_{0};
  std::string first_error_;  // written once, before errors_ is read as non-zero
};

double median(std::vector<double> v) {
  std::sort(v.begin(), v.end());
  return v[v.size() / 2];
}

int run_one(std::size_t n) {
  if (!holdfast::init()) {
    return 1;
  }
  auto cert = holdfast::generate_self_signed_certificate({"localhost"}, {"127.0.0.1"}, 1);
  if (!cert) {
    return 1;
  }
  int to_server[2];
  int from_server[2];
  if (::pipe(to_server) != 0 || ::pipe(from_server) != 0) {
    return 1;
  }
  const pid_t child = ::fork();  // before any thread exists in this process
  if (child == 0) {
    ::close(to_server[1]);
    ::close(from_server[0]);
    ServerChild::run(to_server[0], from_server[1], *cert);
  }
  ::close(to_server[0]);
  ::close(from_server[1]);
  std::uint16_t port = 0;
  if (::read(from_server[0], &port, sizeof port) != sizeof port) {
    return 1;
  }
  const std::string ca = "/tmp/holdfast-bench-scaling-" + std::to_string(::getpid()) + ".pem";
  std::ofstream(ca) << cert->cert_pem;
  int code = 0;
  {
    Bench bench(to_server[1], from_server[0], "https://127.0.0.1:" + std::to_string(port), ca, n);
    const auto t = Clock::now();
    if (!bench.fill(n)) {
      std::fprintf(stderr, "could not open %zu connections\n", n);
      std::exit(1);
    }
    const double fill_s = std::chrono::duration<double>(Clock::now() - t).count();
    // Setup first: while every connection holds a request, each new request needs a new
    // connection. Then dispatch over kConcurrency idle connections (opened by a warm-up round).
    std::vector<double> setup_client, setup_server, dispatch_client, dispatch_server;
    std::uint64_t live = n;
    for (int round = 0; round < kRounds; ++round) {
      const auto [sc, ss] = bench.setup_round(live);
      live += kNewConnections;
      setup_client.push_back(static_cast<double>(sc) / kNewConnections);
      setup_server.push_back(static_cast<double>(ss) / kNewConnections);
    }
    (void)bench.dispatch_round();
    for (int round = 0; round < kRounds; ++round) {
      const auto [dc, ds] = bench.dispatch_round();
      dispatch_client.push_back(static_cast<double>(dc) / kRequests);
      dispatch_server.push_back(static_cast<double>(ds) / kRequests);
    }
    const Report end = bench.ask('h');
    std::printf(
        "live=%zu client_opened=%llu server_open=%llu fill_s=%.2f setup_us_client=%.1f "
        "setup_us_server=%.1f "
        "setup_us=%.1f dispatch_us_client=%.2f dispatch_us_server=%.2f dispatch_us=%.2f "
        "errors=%zu\n",
        n, static_cast<unsigned long long>(bench.opened()),
        static_cast<unsigned long long>(end.connections_open), fill_s, median(setup_client),
        median(setup_server), median(setup_client) + median(setup_server), median(dispatch_client),
        median(dispatch_server), median(dispatch_client) + median(dispatch_server), bench.errors());
    std::fflush(stdout);
    bench.ask('r');  // answer the held requests before the client goes
    code = bench.errors() == 0 ? 0 : 1;
  }
  const char quit = 'q';
  [[maybe_unused]] auto w = ::write(to_server[1], &quit, 1);
  ::waitpid(child, nullptr, 0);
  std::remove(ca.c_str());
  return code;
}

// Each N in a fresh pair of processes; prints their lines and the ratios to the first.
int run_all(const std::vector<std::size_t>& sizes) {
  double setup_first = 0;
  double dispatch_first = 0;
  for (const std::size_t n : sizes) {
    int out[2];
    if (::pipe(out) != 0) {
      return 1;
    }
    posix_spawn_file_actions_t actions;
    posix_spawn_file_actions_init(&actions);
    posix_spawn_file_actions_adddup2(&actions, out[1], STDOUT_FILENO);
    posix_spawn_file_actions_addclose(&actions, out[0]);
    std::string self = "/proc/self/exe";
    std::string flag = "--one";
    std::string size = std::to_string(n);
    char* argv[] = {self.data(), flag.data(), size.data(), nullptr};
    pid_t pid = -1;
    const int rc = ::posix_spawn(&pid, self.c_str(), &actions, nullptr, argv, environ);
    posix_spawn_file_actions_destroy(&actions);
    ::close(out[1]);
    std::string line;
    char buffer[1024];
    for (ssize_t r = 0; rc == 0 && (r = ::read(out[0], buffer, sizeof buffer)) > 0;) {
      line.append(buffer, static_cast<std::size_t>(r));
    }
    ::close(out[0]);
    int status = 0;
    if (rc != 0 || ::waitpid(pid, &status, 0) != pid || !WIFEXITED(status) ||
        WEXITSTATUS(status) != 0) {
      std::fprintf(stderr, "run at %zu live connections failed\n", n);
      return 1;
    }
    const auto get = [&line](const std::string& name) {
      const auto at = line.find(" " + name + "=");
      return at == std::string::npos ? -1.0 : std::atof(line.c_str() + at + name.size() + 2);
    };
    const double setup = get("setup_us");
    const double dispatch = get("dispatch_us");
    if (setup_first == 0) {
      setup_first = setup;
      dispatch_first = dispatch;
    }
    line.pop_back();
    std::printf("%s setup_ratio=%.3f dispatch_ratio=%.3f\n", line.c_str(), setup / setup_first,
                dispatch / dispatch_first);
    std::fflush(stdout);
  }
  return 0;
}

}  // namespace

int main(int argc, char** argv) {
  if (argc == 3 && std::string(argv[1]) == "--one") {
    return run_one(std::strtoull(argv[2], nullptr, 10));
  }
  std::vector<std::size_t> sizes;
  for (int i = 1; i < argc; ++i) {
    sizes.push_back(std::strtoull(argv[i], nullptr, 10));
  }
  if (sizes.empty()) {
    sizes = {100, 1'000, 10'000};
  }
  return run_all(sizes);
}
