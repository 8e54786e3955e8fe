// `holdfast bench`: embedded TLS server and client in one process (default), or split over two
// processes with --server-only / --client-only; method and limits in bench/README.md.
#include "bench_command.h"

#include <malloc.h>
#include <pthread.h>
#include <signal.h>
#include <sys/resource.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <iterator>
#include <memory>
#include <mutex>
#include <sstream>
#include <string>
#include <string_view>
#include <thread>
#include <vector>

#include <CLI/CLI.hpp>

#include "exit_codes.h"
#include "holdfast/certs.h"
#include "holdfast/client.h"
#include "holdfast/init.h"
#include "holdfast/server.h"

namespace holdfast::cli {
namespace {

using Clock = std::chrono::steady_clock;
using std::chrono::milliseconds;

// Descriptors kept back for the listener, loops, resolver, stdio and the temp certificate file.
constexpr std::size_t kReservedFds = 256;
// Handshakes in flight at once while opening: keeps the listen backlog from overflowing.
constexpr std::size_t kOpenWindow = 128;
// Budget of the opening phase: a fixed part plus a per-connection part (debug builds are slow).
constexpr milliseconds kOpenBase{20'000};
constexpr milliseconds kOpenPerConnection{4};
// In-flight keep-alive requests get this long to finish after the phase ends.
constexpr milliseconds kDrainMargin{5'000};
constexpr milliseconds kProgressEvery{250};

int usage(const std::string& message) {
  print_error(message);
  return static_cast<int>(ExitCode::usage);
}

double seconds_since(Clock::time_point start) {
  return std::chrono::duration<double>(Clock::now() - start).count();
}

// One reading of the process's memory and CPU counters.
struct Snapshot {
  std::int64_t rss = 0;         // /proc/self/statm resident pages * page size
  std::int64_t heap = 0;        // mallinfo2: bytes in use (arenas + mmapped chunks)
  std::int64_t socket_mem = 0;  // /proc/net/sockstat TCP mem pages * page size (system-wide)
  std::int64_t slab = 0;        // /proc/slabinfo bytes of the per-socket caches (system-wide)
  std::int64_t cpu_us = 0;      // getrusage(RUSAGE_SELF) user + system
};

std::int64_t tcp_socket_memory(std::int64_t page) {
  std::ifstream in("/proc/net/sockstat");
  for (std::string line; std::getline(in, line);) {
    if (!line.starts_with("TCP:")) {
      continue;
    }
    const std::size_t at = line.find(" mem ");
    return at == std::string::npos ? 0 : std::atoll(line.c_str() + at + 5) * page;
  }
  return 0;
}

// The slab caches every TCP socket with a descriptor and an epoll registration allocates from.
// /proc/slabinfo is readable by root only; elsewhere this reads 0.
std::int64_t socket_slab_bytes() {
  static constexpr std::string_view kCaches[] = {
      "TCP", "TCPv6", "sock_inode_cache", "filp", "dentry", "eventpoll_epi", "eventpoll_pwq"};
  std::ifstream in("/proc/slabinfo");
  std::int64_t total = 0;
  for (std::string line; std::getline(in, line);) {
    std::istringstream fields(line);
    std::string name;
    std::int64_t active = 0;
    std::int64_t all = 0;
    std::int64_t size = 0;
    fields >> name >> active >> all >> size;
    if (std::find(std::begin(kCaches), std::end(kCaches), name) != std::end(kCaches)) {
      total += active * size;
    }
  }
  return total;
}

Snapshot take_snapshot() {
  Snapshot s;
  const std::int64_t page = ::sysconf(_SC_PAGESIZE);
  std::ifstream statm("/proc/self/statm");
  std::int64_t size = 0;
  std::int64_t resident = 0;
  statm >> size >> resident;
  s.rss = resident * page;
  const struct mallinfo2 info = ::mallinfo2();
  s.heap = static_cast<std::int64_t>(info.uordblks + info.hblkhd);
  s.socket_mem = tcp_socket_memory(page);
  s.slab = socket_slab_bytes();
  rusage usage{};
  ::getrusage(RUSAGE_SELF, &usage);
  s.cpu_us = (usage.ru_utime.tv_sec + usage.ru_stime.tv_sec) * 1'000'000LL +
             usage.ru_utime.tv_usec + usage.ru_stime.tv_usec;
  return s;
}

// Holds the answers to "/open" until every connection is open, so that each request of the
// opening phase needs its own connection (an answered one would be reused from the pool).
class Gate {
 public:
  // `release_at`: the request count that releases the gate by itself (0: only release() does).
  Gate(std::size_t capacity, std::uint64_t release_at) : release_at_(release_at) {
    held_.reserve(capacity);
  }
  void hold(const ResponseWriter& writer, const Response& response) {
    std::unique_lock lock(mutex_);
    const std::uint64_t count = received_.fetch_add(1) + 1;
    if (open_) {
      lock.unlock();
      writer.send(response);
      return;
    }
    held_.push_back(writer);
    lock.unlock();
    if (count == release_at_) {
      release(response);
    }
  }
  // Answers everything held and every later request at once. Keeps the vector's capacity so the
  // memory snapshots before and after the opening phase both contain it.
  void release(const Response& response) {
    std::vector<ResponseWriter> to_answer;
    {
      std::lock_guard lock(mutex_);
      open_ = true;
      to_answer.assign(held_.begin(), held_.end());
      held_.clear();
    }
    for (const ResponseWriter& writer : to_answer) {
      writer.send(response);
    }
  }
  [[nodiscard]] std::uint64_t received() const { return received_.load(); }

 private:
  const std::uint64_t release_at_;
  std::mutex mutex_;
  bool open_ = false;
  std::vector<ResponseWriter> held_;
  std::atomic<std::uint64_t> received_{0};
};

// Counters shared with completion callbacks (which run on the client's loop threads).
struct Counters {
  std::atomic<std::uint64_t> ok{0};
  std::atomic<std::uint64_t> errors{0};
  std::mutex first_error_mutex;
  std::string first_error;
  void fail(const std::string& what) {
    if (errors.fetch_add(1) == 0) {
      std::lock_guard lock(first_error_mutex);
      first_error = what;
    }
  }
  void complete(const Result<Response>& r) {
    if (!r) {
      fail(r.error().message());
    } else if (r->status != 200) {
      fail("status " + std::to_string(r->status));
    } else {
      ok.fetch_add(1);
    }
  }
};

// A live progress line on stderr, only when stderr is a terminal.
class Progress {
 public:
  Progress() : enabled_(::isatty(STDERR_FILENO) == 1) {}
  void show(const char* phase, std::uint64_t open, std::uint64_t requests, std::uint64_t errors) {
    const auto now = Clock::now();
    if (!enabled_ || now - last_ < kProgressEvery) {
      return;
    }
    const double dt = std::chrono::duration<double>(now - last_).count();
    std::fprintf(stderr, "\r\033[K%s: %llu open, %.0f handshakes/s, %.0f requests/s, %llu errors",
                 phase, static_cast<unsigned long long>(open),
                 static_cast<double>(open - last_open_) / dt,
                 static_cast<double>(requests - last_requests_) / dt,
                 static_cast<unsigned long long>(errors));
    last_ = now;
    last_open_ = open;
    last_requests_ = requests;
  }
  void done() const {
    if (enabled_) {
      std::fprintf(stderr, "\r\033[K");
    }
  }

 private:
  bool enabled_;
  Clock::time_point last_ = Clock::now();
  std::uint64_t last_open_ = 0;
  std::uint64_t last_requests_ = 0;
};

// Everything the report prints.
struct Report {
  const char* mode = "in-process";
  const char* scope = "client + server";  // whose memory and CPU the figures are
  std::size_t connections = 0;            // the divisor: connections actually opened
  std::uint64_t open_errors = 0;
  double open_seconds = 0;
  std::int64_t rss_delta = 0;
  std::int64_t rss_trimmed_delta = 0;  // after malloc_trim(0): freed-but-kept pages returned
  std::int64_t heap_delta = 0;
  std::int64_t socket_delta = 0;
  std::int64_t slab_delta = 0;
  std::int64_t open_cpu_us = 0;
  std::uint64_t server_connections_open = 0;
  std::uint64_t client_resumptions = 0;
  std::uint64_t requests = 0;
  std::uint64_t request_errors = 0;
  double keepalive_seconds = 0;
  std::int64_t keepalive_cpu_us = 0;
  std::vector<std::uint32_t> latencies_us;  // sorted
  std::string first_error;
};

// The certificate's PEM in a temp file for ClientTlsOptions::ca_file; removed on destruction.
class TempCertFile {
 public:
  explicit TempCertFile(const std::string& pem) {
    char pattern[] = "/tmp/holdfast-bench-XXXXXX";
    const int fd = ::mkstemp(pattern);
    if (fd < 0) {
      return;
    }
    ::close(fd);
    std::ofstream out(pattern, std::ios::binary | std::ios::trunc);
    out << pem;
    out.close();
    path_ = out ? pattern : "";
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

// The in-process setup: server, gate, client and the response they exchange.
struct Bench {
  Bench(const BenchFlags& f, std::uint64_t release_at)
      : flags(f), gate(f.connections, release_at) {}
  const BenchFlags& flags;
  Response response;
  Gate gate;
  std::unique_ptr<Server> server;
  std::unique_ptr<TempCertFile> ca;
  std::unique_ptr<Client> client;
  std::string base_url;
  Progress progress;
  std::uint64_t warm_connections = 0;  // connections the warm-up opened
  std::string server_cert_pem;         // the embedded server's generated certificate
};

Result<std::unique_ptr<Server>> start_server(Bench& b, const GeneratedCertificate& cert) {
  ServerOptions options;
  options.threads = b.flags.threads;
  ServerTlsOptions tls;
  tls.cert_pem = cert.cert_pem;
  tls.key_pem = cert.key_pem;
  tls.min_version = TlsVersion::tls1_3;
  options.tls = tls;
  options.timeouts.keepalive_idle = std::chrono::minutes(30);
  Bench* bench = &b;
  return Server::start(options, [bench](const Request& request, const ResponseWriter& writer) {
    if (request.url == "/open") {
      bench->gate.hold(writer, bench->response);
    } else {
      writer.send(bench->response);
    }
  });
}

ClientOptions client_options(const BenchFlags& f, const std::string& ca_file) {
  ClientOptions options;
  options.threads = f.threads;
  options.tls.ca_file = ca_file;
  options.tls.min_version = TlsVersion::tls1_3;
  options.tls.session_resumption = f.resumption;
  options.pool.max_per_origin = f.connections + f.busy;
  options.pool.max_total = f.connections + f.busy;
  options.pool.max_idle_per_origin = f.connections + f.busy;
  options.pool.idle_timeout = std::chrono::minutes(30);
  options.timeouts.connect = milliseconds(10'000);
  options.timeouts.tls_handshake = milliseconds(10'000);
  options.timeouts.deadline = milliseconds(15'000);
  options.retry = false;  // a retry would hide an error and open an extra connection
  return options;
}

// Starts the server, writes its certificate for the client, makes the client and warms both up
// (TLS contexts, loop threads) so the baseline snapshot already contains them.
int start_embedded_server(Bench& b) {
  const Result<GeneratedCertificate> cert =
      generate_self_signed_certificate({"localhost"}, {"127.0.0.1"}, 1);
  if (!cert) {
    print_error(cert.error(), "");
    return 1;
  }
  Result<std::unique_ptr<Server>> server = start_server(b, *cert);
  if (!server) {
    print_error(server.error(), "");
    return 1;
  }
  b.server = std::move(*server);
  b.server_cert_pem = cert->cert_pem;
  b.ca = std::make_unique<TempCertFile>(cert->cert_pem);
  if (b.ca->path().empty()) {
    print_error("could not write the certificate to a temporary file under /tmp");
    return 1;
  }
  b.base_url = "https://127.0.0.1:" + std::to_string(b.server->port());
  return 0;
}

// Makes the client and warms it up (TLS context, loop threads) so the baseline contains them.
int start_client(Bench& b, const std::string& ca_file) {
  b.client = std::make_unique<Client>(client_options(b.flags, ca_file));
  const Result<Response> warm = b.client->get(b.base_url + "/");
  if (!warm) {
    print_error(warm.error(), b.base_url + "/");
    return 1;
  }
  b.client->close_idle_connections();
  std::this_thread::sleep_for(milliseconds(200));
  b.warm_connections = b.client->stats().connections_opened;
  return 0;
}

// Phase 1: opens flags.connections connections, one held request each, then answers them all.
void open_phase(Bench& b, Report& report, const std::shared_ptr<Counters>& counters) {
  const std::size_t n = b.flags.connections;
  const auto start = Clock::now();
  const auto deadline = start + kOpenBase + kOpenPerConnection * static_cast<int64_t>(n);
  RequestOptions options;
  ClientTimeouts timeouts = client_options(b.flags, "").timeouts;
  timeouts.deadline = std::chrono::duration_cast<milliseconds>(deadline - start) + kDrainMargin;
  options.timeouts = timeouts;
  // Embedded: the gate tells how many connections are open. Against --target only the answers
  // do, and they come once all N are open, so everything is sent at once.
  const bool embedded = b.server != nullptr;
  const auto opened = [&] { return embedded ? b.gate.received() : counters->ok.load(); };
  const std::size_t window = embedded ? kOpenWindow : n;
  std::size_t issued = 0;
  while (Clock::now() < deadline && opened() + counters->errors.load() < n) {
    while (issued < n && issued < opened() + counters->errors.load() + window) {
      Request request;
      request.url = b.base_url + "/open";
      b.client->request_async(std::move(request), options,
                              [counters](Result<Response> r) { counters->complete(r); });
      ++issued;
    }
    b.progress.show("opening", opened(), 0, counters->errors.load());
    std::this_thread::sleep_for(milliseconds(1));
  }
  report.open_seconds = seconds_since(start);
  if (embedded) {
    b.gate.release(b.response);
  }
  const auto drain_end = Clock::now() + kDrainMargin + timeouts.deadline;
  while (counters->ok.load() + counters->errors.load() < issued && Clock::now() < drain_end) {
    std::this_thread::sleep_for(milliseconds(5));
  }
  report.open_errors = counters->errors.load() + (n - issued);
}

// The keep-alive phase's state: `busy` workers, each with one request in flight at a time.
struct KeepAlive {
  Client* client = nullptr;
  std::string url;
  Clock::time_point end;
  Counters counters;
  std::atomic<std::size_t> running{0};
  std::vector<std::vector<std::uint32_t>> latencies;  // one vector per worker: no locking
};

void issue(const std::shared_ptr<KeepAlive>& k, std::size_t worker) {
  if (Clock::now() >= k->end) {
    k->running.fetch_sub(1);
    return;
  }
  const auto start = Clock::now();
  Request request;
  request.url = k->url;
  k->client->request_async(std::move(request), {}, [k, worker, start](Result<Response> r) {
    const auto us =
        std::chrono::duration_cast<std::chrono::microseconds>(Clock::now() - start).count();
    k->counters.complete(r);
    if (r && r->status == 200) {
      k->latencies[worker].push_back(static_cast<std::uint32_t>(us));
    }
    issue(k, worker);
  });
}

// Phase 3: `busy` connections send requests back to back for `duration` seconds.
void keepalive_phase(Bench& b, Report& report) {
  auto k = std::make_shared<KeepAlive>();
  k->client = b.client.get();
  k->url = b.base_url + "/";
  k->latencies.resize(b.flags.busy);
  const auto start = Clock::now();
  k->end = start + std::chrono::duration_cast<Clock::duration>(
                       std::chrono::duration<double>(b.flags.duration));
  k->running.store(b.flags.busy);
  for (std::size_t w = 0; w < b.flags.busy; ++w) {
    issue(k, w);
  }
  const auto hard_end = k->end + kDrainMargin;
  while (k->running.load() > 0 && Clock::now() < hard_end) {
    b.progress.show("keep-alive", b.client->stats().connections_opened, k->counters.ok.load(),
                    k->counters.errors.load());
    std::this_thread::sleep_for(milliseconds(5));
  }
  report.keepalive_seconds = seconds_since(start);
  report.requests = k->counters.ok.load();
  report.request_errors = k->counters.errors.load() + k->running.load();  // unfinished count too
  if (report.first_error.empty()) {
    std::lock_guard lock(k->counters.first_error_mutex);
    report.first_error = k->counters.first_error;
  }
  if (k->running.load() == 0) {  // otherwise callbacks may still be writing into the vectors
    for (const auto& v : k->latencies) {
      report.latencies_us.insert(report.latencies_us.end(), v.begin(), v.end());
    }
  }
  std::sort(report.latencies_us.begin(), report.latencies_us.end());
}

std::uint32_t percentile(const std::vector<std::uint32_t>& sorted, double p) {
  if (sorted.empty()) {
    return 0;
  }
  const auto at = static_cast<std::size_t>(p / 100.0 * static_cast<double>(sorted.size() - 1));
  return sorted[std::min(at, sorted.size() - 1)];
}

double per(std::int64_t total, std::uint64_t count) {
  return count == 0 ? 0.0 : static_cast<double>(total) / static_cast<double>(count);
}

std::string render_json(const BenchFlags& f, const Report& r) {
  const auto& l = r.latencies_us;
  const std::uint64_t n = r.connections;
  char out[2048];
  std::snprintf(
      out, sizeof out,
      "{\"mode\":\"%s\",\"memory_scope\":\"%s\","
      "\"connections\":%llu,\"server_connections_open\":%llu,\"threads\":%zu,\"busy\":%zu,"
      "\"duration_s\":%.3f,\"body_size\":%zu,\"tls_resumptions\":%llu,"
      "\"open_seconds\":%.3f,\"handshakes_per_s\":%.1f,\"cpu_us_per_handshake\":%.1f,"
      "\"rss_bytes_per_connection\":%.1f,\"rss_trimmed_bytes_per_connection\":%.1f,"
      "\"heap_bytes_per_connection\":%.1f,"
      "\"kernel_tcp_mem_bytes_per_connection\":%.1f,\"kernel_slab_bytes_per_connection\":%.1f,"
      "\"requests\":%llu,\"requests_per_s\":%.1f,"
      "\"cpu_us_per_request\":%.2f,\"latency_us_p50\":%u,\"latency_us_p90\":%u,"
      "\"latency_us_p99\":%u,\"latency_us_p999\":%u,\"open_errors\":%llu,"
      "\"request_errors\":%llu,\"errors\":%llu}\n",
      r.mode, r.scope, static_cast<unsigned long long>(n),
      static_cast<unsigned long long>(r.server_connections_open), f.threads, f.busy,
      r.keepalive_seconds, f.body_size, static_cast<unsigned long long>(r.client_resumptions),
      r.open_seconds, static_cast<double>(n) / r.open_seconds, per(r.open_cpu_us, n),
      per(r.rss_delta, n), per(r.rss_trimmed_delta, n), per(r.heap_delta, n),
      per(r.socket_delta, n), per(r.slab_delta, n), static_cast<unsigned long long>(r.requests),
      static_cast<double>(r.requests) / r.keepalive_seconds, per(r.keepalive_cpu_us, r.requests),
      percentile(l, 50), percentile(l, 90), percentile(l, 99), percentile(l, 99.9),
      static_cast<unsigned long long>(r.open_errors),
      static_cast<unsigned long long>(r.request_errors),
      static_cast<unsigned long long>(r.open_errors + r.request_errors));
  return out;
}

std::string render_table(const BenchFlags& f, const Report& r) {
  const auto& l = r.latencies_us;
  const std::uint64_t n = r.connections;
  std::ostringstream o;
  char line[256];
  auto row = [&](const char* name, const char* fmt, auto... v) {
    std::snprintf(line, sizeof line, fmt, v...);
    o << "  " << name << std::string(name[0] == 0 ? 0 : 34 - std::string(name).size(), ' ') << line
      << "\n";
  };
  o << "holdfast bench (" << r.mode << ": figures are for the " << r.scope << ", TLS 1.3, "
    << f.threads << " loop thread(s) each)\n";
  o << "idle connections\n";
  if (r.server_connections_open > 0) {
    row("connections held", "%llu (server sees %llu open)", static_cast<unsigned long long>(n),
        static_cast<unsigned long long>(r.server_connections_open));
  } else {
    row("connections held", "%llu", static_cast<unsigned long long>(n));
  }
  row("handshakes/s", "%.0f (%.2f s to open all)", static_cast<double>(n) / r.open_seconds,
      r.open_seconds);
  row("CPU per handshake", "%.0f us (incl. 1 request)", per(r.open_cpu_us, n));
  row("RSS per idle connection", "%.0f B (%.0f B after malloc_trim)", per(r.rss_delta, n),
      per(r.rss_trimmed_delta, n));
  row("heap per idle connection", "%.0f B (mallinfo2)", per(r.heap_delta, n));
  row("kernel socket slabs", "%.0f B per connection (system-wide)", per(r.slab_delta, n));
  row("kernel TCP buffers", "%.0f B per connection (sockstat TCP mem, system-wide)",
      per(r.socket_delta, n));
  o << "keep-alive (" << f.busy << " busy connections, " << f.body_size << "-byte responses)\n";
  row("requests", "%llu in %.2f s", static_cast<unsigned long long>(r.requests),
      r.keepalive_seconds);
  row("requests/s", "%.0f", static_cast<double>(r.requests) / r.keepalive_seconds);
  row("CPU per request", "%.1f us", per(r.keepalive_cpu_us, r.requests));
  row("latency p50/p90/p99/p99.9", "%u / %u / %u / %u us", percentile(l, 50), percentile(l, 90),
      percentile(l, 99), percentile(l, 99.9));
  row("errors", "%llu (opening %llu, keep-alive %llu)",
      static_cast<unsigned long long>(r.open_errors + r.request_errors),
      static_cast<unsigned long long>(r.open_errors),
      static_cast<unsigned long long>(r.request_errors));
  return o.str();
}

// The most connections one process can hold at `fds_per_connection` descriptors each, after
// raising the soft descriptor limit to the hard one.
std::size_t process_capacity(std::size_t fds_per_connection) {
  rlimit limit{};
  if (::getrlimit(RLIMIT_NOFILE, &limit) != 0) {
    return 0;
  }
  if (limit.rlim_cur < limit.rlim_max) {
    limit.rlim_cur = limit.rlim_max;
    ::setrlimit(RLIMIT_NOFILE, &limit);
    ::getrlimit(RLIMIT_NOFILE, &limit);
  }
  return limit.rlim_cur <= kReservedFds ? 0 : (limit.rlim_cur - kReservedFds) / fds_per_connection;
}

int check_flags(const BenchFlags& f) {
  if (f.server_only && (f.client_only || !f.target.empty())) {
    return usage("--server-only does not go with --client-only or --target");
  }
  if (f.client_only != !f.target.empty()) {
    return usage("--client-only and --target URL go together");
  }
  if (!f.write_cert.empty() && !f.server_only) {
    return usage("--write-cert goes with --server-only");
  }
  const bool split = f.server_only || f.client_only;
  const std::size_t capacity = process_capacity(split ? 1 : 2);
  if (f.connections + f.busy > capacity) {
    return usage(
        "--connections " + std::to_string(f.connections) + " (+ --busy " + std::to_string(f.busy) +
        ") needs " + (split ? "one descriptor" : "two descriptors") +
        " per connection in this process; the open-file limit allows " + std::to_string(capacity) +
        " here. Larger runs need the multi-process mode, which is not built yet.");
  }
  if (f.connections == 0 || f.busy == 0 || f.duration <= 0) {
    return usage("--connections, --busy and --duration must be positive");
  }
  return 0;
}

// Runs phases 1-3 and fills `report`.
void measure(Bench& b, Report& report) {
  auto counters = std::make_shared<Counters>();
  ::malloc_trim(0);  // the baseline holds no freed pages either, so the trimmed delta is fair
  const Snapshot before = take_snapshot();
  open_phase(b, report, counters);
  std::this_thread::sleep_for(milliseconds(300));  // let the last writes finish and buffers go
  const Snapshot after = take_snapshot();
  const std::uint64_t opened = b.client->stats().connections_opened - b.warm_connections;
  report.connections =
      b.server ? b.flags.connections : std::min<std::uint64_t>(opened, b.flags.connections);
  report.rss_delta = after.rss - before.rss;
  ::malloc_trim(0);
  report.rss_trimmed_delta = take_snapshot().rss - before.rss;
  report.heap_delta = after.heap - before.heap;
  report.socket_delta = after.socket_mem - before.socket_mem;
  report.slab_delta = after.slab - before.slab;
  report.open_cpu_us = after.cpu_us - before.cpu_us;
  report.server_connections_open = b.server ? b.server->stats().connections_open : 0;
  report.client_resumptions = b.client->stats().tls_resumptions;
  {
    std::lock_guard lock(counters->first_error_mutex);
    report.first_error = counters->first_error;
  }
  keepalive_phase(b, report);
  report.keepalive_cpu_us = take_snapshot().cpu_us - after.cpu_us;
}

// Blocks SIGINT and SIGTERM in the calling thread (and the threads it starts later), so that
// sigtimedwait() is the only place these signals are taken.
sigset_t block_stop_signals() {
  sigset_t signals;
  sigemptyset(&signals);
  sigaddset(&signals, SIGINT);
  sigaddset(&signals, SIGTERM);
  pthread_sigmask(SIG_BLOCK, &signals, nullptr);
  return signals;
}

// Waits until `done()` or a stop signal; false on the signal.
template <typename Done>
bool wait_unless_stopped(const sigset_t& signals, Done done) {
  const timespec tick{0, 50'000'000};
  while (!done()) {
    if (::sigtimedwait(&signals, nullptr, &tick) > 0) {
      return false;
    }
  }
  return true;
}

void print_server_report(const BenchFlags& f, const Report& r, std::uint64_t handshakes) {
  const double n = static_cast<double>(r.connections);
  if (f.json) {
    std::printf(
        "{\"mode\":\"server-only\",\"phase\":\"idle\",\"memory_scope\":\"server process\","
        "\"connections\":%zu,\"tls_handshakes\":%llu,\"cpu_us_per_handshake\":%.1f,"
        "\"rss_bytes_per_connection\":%.1f,\"rss_trimmed_bytes_per_connection\":%.1f,"
        "\"heap_bytes_per_connection\":%.1f,\"kernel_slab_bytes_per_connection\":%.1f}\n",
        r.connections, static_cast<unsigned long long>(handshakes), r.open_cpu_us / n,
        r.rss_delta / n, r.rss_trimmed_delta / n, r.heap_delta / n, r.slab_delta / n);
  } else {
    std::printf(
        "holdfast bench (server-only: figures are for the server process)\n"
        "  connections held                  %zu (%llu TLS handshakes)\n"
        "  CPU per handshake                 %.0f us (incl. 1 request)\n"
        "  RSS per idle connection           %.0f B (%.0f B after malloc_trim)\n"
        "  heap per idle connection          %.0f B (mallinfo2)\n"
        "  kernel socket slabs               %.0f B per connection (system-wide: both ends if the "
        "client is on this machine)\n",
        r.connections, static_cast<unsigned long long>(handshakes), r.open_cpu_us / n,
        r.rss_delta / n, r.rss_trimmed_delta / n, r.heap_delta / n, r.slab_delta / n);
  }
  std::fflush(stdout);
}

// Waits for --connections held requests, answers them, prints the server's idle memory; then
// serves until SIGINT/SIGTERM and prints the CPU per request served meanwhile.
int serve_and_measure(Bench& b, const sigset_t& signals) {
  ::malloc_trim(0);
  const Snapshot before = take_snapshot();
  const std::size_t n = b.flags.connections;
  if (!wait_unless_stopped(signals, [&] { return b.gate.received() >= n; })) {
    print_error("stopped before " + std::to_string(n) + " connections were open");
    return 1;
  }
  std::this_thread::sleep_for(milliseconds(300));
  const Snapshot after = take_snapshot();
  Report r;
  r.connections = b.server->stats().connections_open;
  r.rss_delta = after.rss - before.rss;
  ::malloc_trim(0);
  r.rss_trimmed_delta = take_snapshot().rss - before.rss;
  r.heap_delta = after.heap - before.heap;
  r.slab_delta = after.slab - before.slab;
  r.open_cpu_us = after.cpu_us - before.cpu_us;
  print_server_report(b.flags, r, b.server->stats().tls_handshakes);
  const std::uint64_t requests_before = b.server->stats().requests;
  wait_unless_stopped(signals, [] { return false; });
  const std::uint64_t requests = b.server->stats().requests - requests_before;
  const std::int64_t cpu = take_snapshot().cpu_us - after.cpu_us;
  std::printf(b.flags.json ? "{\"mode\":\"server-only\",\"phase\":\"final\",\"requests\":%llu,"
                             "\"cpu_us_per_request\":%.2f}\n"
                           : "  requests served after that       %llu, %.1f us CPU each\n",
              static_cast<unsigned long long>(requests), per(cpu, requests));
  return 0;
}

int run_server_only(Bench& b) {
  const sigset_t signals = block_stop_signals();
  if (const int code = start_embedded_server(b); code != 0) {
    return code;
  }
  if (!b.flags.write_cert.empty()) {
    std::ofstream out(b.flags.write_cert, std::ios::binary | std::ios::trunc);
    out << b.server_cert_pem;
    out.close();
    if (!out) {
      print_error("could not write " + b.flags.write_cert);
      return static_cast<int>(ExitCode::write_error);
    }
  }
  std::printf("listening on %s\n", b.base_url.c_str());
  std::fflush(stdout);
  const int code = serve_and_measure(b, signals);
  b.server->shutdown(milliseconds(1'000));
  return code;
}

// In-process (embedded server) or --client-only: phases 1-3 and the report.
int run_client(Bench& b) {
  if (b.flags.client_only) {
    b.base_url = b.flags.target;
    while (b.base_url.ends_with('/')) {
      b.base_url.pop_back();
    }
  } else if (const int code = start_embedded_server(b); code != 0) {
    return code;
  }
  if (const int code = start_client(b, b.flags.client_only ? b.flags.cacert : b.ca->path());
      code != 0) {
    return code;
  }
  Report report;
  if (b.flags.client_only) {
    report.mode = "client-only";
    report.scope = "client process";
  }
  measure(b, report);
  b.progress.done();
  const BenchFlags& f = b.flags;
  std::fputs((f.json ? render_json(f, report) : render_table(f, report)).c_str(), stdout);
  std::fflush(stdout);
  b.client.reset();  // closes every connection before the embedded server shuts down
  if (b.server) {
    b.server->shutdown(milliseconds(1'000));
  }
  if (report.connections < f.connections) {
    print_error("only " + std::to_string(report.connections) + " of " +
                std::to_string(f.connections) +
                " connections were opened: the target answered /open before all were open "
                "(use `holdfast bench --server-only` as the target)");
    return 1;
  }
  if (report.open_errors + report.request_errors > 0) {
    print_error("the run had errors; first: " + report.first_error);
    return 1;
  }
  return 0;
}

}  // namespace

void add_bench_command(CLI::App& app) {
  static BenchFlags f;
  CLI::App* bench = app.add_subcommand(
      "bench", "measure idle TLS connection memory, handshakes/s and keep-alive requests/s");
  bench
      ->add_option("--connections", f.connections,
                   "idle TLS connections to open and hold (in-process: two descriptors each)")
      ->capture_default_str();
  bench->add_option("--busy", f.busy, "connections sending requests in the keep-alive phase")
      ->capture_default_str();
  bench->add_option("--duration", f.duration, "seconds of the keep-alive phase")
      ->check(CLI::Range(0.1, 3600.0))
      ->capture_default_str();
  bench->add_option("--body-size", f.body_size, "response body bytes")
      ->check(CLI::Range(0, 16 << 20))
      ->capture_default_str();
  bench->add_option("--threads", f.threads, "loop threads of the client and of the server (each)")
      ->check(CLI::Range(1, 64))
      ->capture_default_str();
  bench->add_flag("--resumption", f.resumption, "resume TLS sessions instead of full handshakes");
  bench->add_flag("--json", f.json, "print JSON instead of the table");
  bench->add_flag("--server-only", f.server_only,
                  "only the server: print its URL, its memory once --connections are open, then "
                  "serve until SIGINT/SIGTERM");
  bench->add_option("--write-cert", f.write_cert, "--server-only: write the certificate PEM here");
  bench->add_flag("--client-only", f.client_only, "only the client, against --target");
  bench->add_option("--target", f.target,
                    "URL of a `holdfast bench --server-only` (with --client-only)");
  bench->add_option("--cacert", f.cacert, "CA PEM FILE for --target")->check(CLI::ExistingFile);
  bench->callback([] { std::exit(run_bench(f)); });
}

int run_bench(const BenchFlags& flags) {
  if (const int code = check_flags(flags); code != 0) {
    return code;
  }
  if (const Result<void> ready = init(); !ready) {
    print_error(ready.error(), "");
    return 1;
  }
  const std::uint64_t release_at = flags.server_only ? flags.connections : 0;
  Bench b(flags, release_at);
  b.response.headers.add("Content-Type", "text/plain");
  b.response.body = flags.body_size == 13 ? "hello, world\n" : std::string(flags.body_size, 'x');
  return flags.server_only ? run_server_only(b) : run_client(b);
}

}  // namespace holdfast::cli
