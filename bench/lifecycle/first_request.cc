// Benchmark: latency of the first TLS request of a process holding 10 million live heap objects,
// against an empty process (incident 000). Each configuration runs in a fresh process.
#include <spawn.h>
#include <sys/resource.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <memory>
#include <string>
#include <vector>

#include "holdfast/certs.h"
#include "holdfast/client.h"
#include "holdfast/error.h"
#include "holdfast/init.h"
#include "holdfast/server.h"

extern char** environ;

namespace {

using Clock = std::chrono::steady_clock;

// A small heap object, as an application's maps and lists hold them (32 bytes, 48 with malloc's
// header and rounding), chained so that every one of them stays reachable.
struct Node {
  Node* next;
  std::uint64_t payload[3];
};

// CPU time of the whole process (every thread, user + system), in milliseconds.
double cpu_ms() {
  rusage u{};
  ::getrusage(RUSAGE_SELF, &u);
  return static_cast<double>(u.ru_utime.tv_sec + u.ru_stime.tv_sec) * 1e3 +
         static_cast<double>(u.ru_utime.tv_usec + u.ru_stime.tv_usec) / 1e3;
}

double ms_since(Clock::time_point start) {
  return std::chrono::duration<double, std::milli>(Clock::now() - start).count();
}

Node* build_heap(std::size_t objects) {
  Node* head = nullptr;
  for (std::size_t i = 0; i < objects; ++i) {
    head = new Node{head, {i, i * 3, i * 7}};
  }
  return head;
}

void free_heap(Node* head) {
  while (head != nullptr) {
    Node* next = head->next;
    delete head;
    head = next;
  }
}

struct Figures {
  double init_ms = 0;
  double heap_ms = 0;
  double server_start_ms = 0;
  double first_request_ms = 0;
  double first_request_cpu_ms = 0;  // client and server threads: both are in this process
  double second_request_ms = 0;
};

// One configuration, in this process: [init], heap, server start, two requests.
int run_one(std::size_t objects, bool call_init) {
  Figures f;
  auto t = Clock::now();
  if (call_init && !holdfast::init()) {
    return 1;
  }
  f.init_ms = ms_since(t);
  t = Clock::now();
  Node* heap = build_heap(objects);
  f.heap_ms = ms_since(t);

  t = Clock::now();
  auto cert = holdfast::generate_self_signed_certificate({"localhost"}, {"127.0.0.1"}, 1);
  if (!cert) {
    std::fprintf(stderr, "certificate: %s\n", holdfast::describe(cert.error()).c_str());
    return 1;
  }
  holdfast::ServerOptions so;
  so.tls = holdfast::ServerTlsOptions{};
  so.tls->cert_pem = cert->cert_pem;
  so.tls->key_pem = cert->key_pem;
  auto server =
      holdfast::Server::start(so, [](const holdfast::Request&, const holdfast::ResponseWriter& w) {
        holdfast::Response r;
        r.body = "ok";
        w.send(std::move(r));
      });
  if (!server) {
    std::fprintf(stderr, "server: %s\n", holdfast::describe(server.error()).c_str());
    return 1;
  }
  f.server_start_ms = ms_since(t);

  const std::string ca = "/tmp/holdfast-bench-first-" + std::to_string(::getpid()) + ".pem";
  std::ofstream(ca) << cert->cert_pem;
  holdfast::ClientOptions co;
  co.tls.ca_file = ca;
  co.timeouts.deadline = std::chrono::minutes(10);
  const std::string url = "https://127.0.0.1:" + std::to_string((*server)->port()) + "/";
  t = Clock::now();
  const double cpu = cpu_ms();
  holdfast::Client client(co);
  auto first = client.get(url);
  f.first_request_ms = ms_since(t);
  f.first_request_cpu_ms = cpu_ms() - cpu;
  client.close_idle_connections();
  t = Clock::now();
  auto second = client.get(url);  // a new connection again: the same work, minus one-time work
  f.second_request_ms = ms_since(t);
  std::remove(ca.c_str());
  if (!first || !second) {
    std::fprintf(stderr, "request failed\n");
    return 1;
  }
  std::printf(
      "objects=%zu init=%d init_ms=%.3f heap_ms=%.1f server_start_ms=%.3f "
      "first_request_ms=%.3f first_request_cpu_ms=%.3f second_request_ms=%.3f\n",
      objects, call_init ? 1 : 0, f.init_ms, f.heap_ms, f.server_start_ms, f.first_request_ms,
      f.first_request_cpu_ms, f.second_request_ms);
  (*server)->shutdown(std::chrono::milliseconds(0));
  free_heap(heap);
  return 0;
}

// Runs this program again with `args` (a fresh process) and returns its one line of figures.
std::string run_fresh(const std::vector<std::string>& args) {
  int out[2];
  if (::pipe(out) != 0) {
    return "";
  }
  posix_spawn_file_actions_t actions;
  posix_spawn_file_actions_init(&actions);
  posix_spawn_file_actions_adddup2(&actions, out[1], STDOUT_FILENO);
  posix_spawn_file_actions_addclose(&actions, out[0]);
  std::vector<char*> argv;
  std::string self = "/proc/self/exe";
  argv.push_back(self.data());
  for (const std::string& a : args) {
    argv.push_back(const_cast<char*>(a.c_str()));
  }
  argv.push_back(nullptr);
  pid_t pid = -1;
  const int rc = ::posix_spawn(&pid, "/proc/self/exe", &actions, nullptr, argv.data(), environ);
  posix_spawn_file_actions_destroy(&actions);
  ::close(out[1]);
  std::string line;
  char buffer[512];
  for (ssize_t n = 0; rc == 0 && (n = ::read(out[0], buffer, sizeof buffer)) > 0;) {
    line.append(buffer, static_cast<std::size_t>(n));
  }
  ::close(out[0]);
  int status = 0;
  if (rc == 0) {
    ::waitpid(pid, &status, 0);
  }
  return line;
}

double field(const std::string& line, const std::string& name) {
  const auto at = line.find(name + "=");
  return at == std::string::npos ? -1 : std::atof(line.c_str() + at + name.size() + 1);
}

double median(std::vector<double> v) {
  std::sort(v.begin(), v.end());
  return v.empty() ? -1 : v[v.size() / 2];
}

// Every configuration `runs` times, each in a fresh process, then the medians.
int run_all(std::size_t objects, int runs) {
  struct Config {
    std::size_t objects;
    bool init;
  };
  const Config configs[] = {{0, true}, {objects, true}, {0, false}, {objects, false}};
  double first_empty_init = 0;
  double first_empty_lazy = 0;
  double cpu_empty_init = 0;
  double cpu_empty_lazy = 0;
  for (const Config& c : configs) {
    std::vector<double> first;
    std::vector<double> second;
    std::vector<double> start;
    std::vector<double> cpu;
    for (int i = 0; i < runs; ++i) {
      const std::string line = run_fresh(
          {"--objects", std::to_string(c.objects), "--one", c.init ? "--init" : "--no-init"});
      std::fputs(line.c_str(), stderr);
      first.push_back(field(line, "first_request_ms"));
      second.push_back(field(line, "second_request_ms"));
      start.push_back(field(line, "server_start_ms"));
      cpu.push_back(field(line, "first_request_cpu_ms"));
    }
    const double f = median(first);
    const double fc = median(cpu);
    double& base = c.init ? first_empty_init : first_empty_lazy;
    double& cpu_base = c.init ? cpu_empty_init : cpu_empty_lazy;
    if (c.objects == 0) {
      base = f;
      cpu_base = fc;
    }
    std::printf(
        "objects=%-9zu init=%-3s server_start_ms=%8.3f first_request_ms=%8.3f "
        "first_request_cpu_ms=%8.3f second_request_ms=%8.3f ratio_vs_empty=%.3f "
        "cpu_ratio_vs_empty=%.3f\n",
        c.objects, c.init ? "yes" : "no", median(start), f, fc, median(second), f / base,
        fc / cpu_base);
  }
  return 0;
}

}  // namespace

int main(int argc, char** argv) {
  std::size_t objects = 10'000'000;
  bool one = false;
  bool call_init = true;
  int runs = 5;
  for (int i = 1; i < argc; ++i) {
    const std::string a = argv[i];
    if (a == "--objects" && i + 1 < argc) {
      objects = std::strtoull(argv[++i], nullptr, 10);
    } else if (a == "--runs" && i + 1 < argc) {
      runs = std::max(1, std::atoi(argv[++i]));
    } else if (a == "--one") {
      one = true;
    } else if (a == "--init") {
      call_init = true;
    } else if (a == "--no-init") {
      call_init = false;
    } else {
      std::fprintf(stderr, "usage: %s [--objects N] [--runs R]   (or --one [--init|--no-init])\n",
                   argv[0]);
      return 2;
    }
  }
  return one ? run_one(objects, call_init) : run_all(objects, runs);
}
