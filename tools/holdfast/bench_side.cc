// `holdfast bench` sides: the gated TLS server and the client that opens, holds and then drives
// connections; each measures itself and reports through its Control.
#include "bench_side.h"

#include <malloc.h>

#include <algorithm>
#include <atomic>
#include <memory>
#include <mutex>
#include <thread>
#include <utility>
#include <vector>

#include "bench_stats.h"
#include "exit_codes.h"
#include "holdfast/client.h"
#include "holdfast/init.h"
#include "holdfast/server.h"

namespace holdfast::cli::bench {
namespace {

using std::chrono::milliseconds;

// In-flight keep-alive requests get this long to finish after the phase ends.
constexpr milliseconds kDrainMargin{5'000};
// How often a side sends a progress line.
constexpr milliseconds kProgressEvery{100};
// TCP keep-alive idle time of the bench's sockets. With the library's 30 s, 100,000 connections
// (200,000 sockets) probe at ~13,000 packets/s; on a saturated 2-core machine the loopback backlog
// (net.core.netdev_max_backlog = 1,000) then drops probes and answers, and the derived
// TCP_USER_TIMEOUT (60 s) ends connections that were held longer than that (measured: 67,485 of
// 100,000 lost, TcpExtTCPAbortOnTimeout). Idle memory, not keep-alive, is measured here.
constexpr std::chrono::minutes kKeepaliveIdle{10};
// Time for the last writes to finish and buffers to be released before an idle snapshot.
constexpr milliseconds kSettle{300};

// Holds the answers to "/open" until released, so that each request of the opening phase needs its
// own connection (an answered one would go back to the client's pool and be reused).
class Gate {
 public:
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
  // Answers everything held and every later request at once. Keeps the vector's capacity so that
  // the baseline and the idle snapshot both contain it.
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

LineWriter& add_memory(LineWriter& line, const ProcessSnapshot& before, const ProcessSnapshot& now,
                       const ProcessSnapshot& trimmed) {
  return line.add("rss", static_cast<double>(now.rss - before.rss))
      .add("rss_trimmed", static_cast<double>(trimmed.rss - before.rss))
      .add("heap", static_cast<double>(now.heap - before.heap))
      .add("cpu_us", static_cast<double>(now.cpu_us - before.cpu_us));
}

Result<std::unique_ptr<Server>> start_gated_server(const ServerPlan& plan, Gate& gate,
                                                   const Response& response) {
  ServerOptions options;
  options.port = plan.port;
  options.reuse_port = plan.reuse_port;
  options.threads = plan.threads;
  ServerTlsOptions tls;
  tls.cert_pem = plan.cert_pem;
  tls.key_pem = plan.key_pem;
  tls.min_version = TlsVersion::tls1_3;
  // One request per connection while opening: HTTP/2 would multiplex them. With h2 the idle
  // clients still offer only http/1.1; the keep-alive client offers only h2.
  tls.alpn =
      plan.h2 ? std::vector<std::string>{"h2", "http/1.1"} : std::vector<std::string>{"http/1.1"};
  options.tls = tls;
  options.timeouts.keepalive_idle = std::chrono::minutes(30);
  options.socket.keepalive_idle = kKeepaliveIdle;
  Gate* g = &gate;
  const Response* r = &response;
  return Server::start(options, [g, r](const Request& request, const ResponseWriter& writer) {
    if (request.url == "/open") {
      g->hold(writer, *r);
    } else {
      writer.send(*r);
    }
  });
}

Response bench_response(std::size_t body_size) {
  Response response;
  response.headers.add("Content-Type", "text/plain");
  response.body = body_size == 13 ? "hello, world\n" : std::string(body_size, 'x');
  return response;
}

// Counters shared with completion callbacks (which run on the client's loop threads).
struct Counters {
  std::atomic<std::uint64_t> ok{0};
  std::atomic<std::uint64_t> errors{0};
  std::mutex mutex;
  std::string first_error;
  void fail(const std::string& what) {
    if (errors.fetch_add(1) == 0) {
      std::lock_guard lock(mutex);
      first_error = what;
    }
  }
  void complete(const Result<Response>& r, bool want_h2 = false) {
    if (!r) {
      fail(r.error().message());
    } else if (r->status != 200) {
      fail("status " + std::to_string(r->status));
    } else if (want_h2 && r->version != HttpVersion::http2) {
      fail("the response came over " + std::string(to_string(r->version)) + ", not HTTP/2");
    } else {
      ok.fetch_add(1);
    }
  }
  std::string first() {
    std::lock_guard lock(mutex);
    return first_error;
  }
};

ClientOptions client_options(const ClientPlan& plan) {
  ClientOptions options;
  options.threads = plan.threads;
  options.tls.ca_file = plan.ca_file;
  options.tls.min_version = TlsVersion::tls1_3;
  options.tls.session_resumption = plan.resumption;
  options.tls.alpn = {"http/1.1"};  // HTTP/2 would carry every "/open" on one connection
  options.socket.bind_address = plan.bind_address;
  options.socket.keepalive_idle = kKeepaliveIdle;
  const std::size_t most = plan.connections + plan.busy + 1;
  options.pool.max_per_origin = most * plan.threads;  // the limits are divided between the loops
  options.pool.max_total = most * plan.threads;
  options.pool.max_idle_per_origin = most * plan.threads;
  options.pool.idle_timeout = std::chrono::minutes(30);
  options.timeouts.connect = plan.open_budget;
  options.timeouts.tls_handshake = plan.open_budget;
  options.timeouts.deadline = milliseconds(15'000);
  options.retry = false;  // a retry would hide an error and open an extra connection
  return options;
}

// The keep-alive client of an h2 run: ALPN h2 only (a server that selects no protocol still gets
// HTTP/1.1: start_client() and Counters::complete() refuse that), `busy` connections per loop
// carrying `streams` requests each.
ClientOptions h2_client_options(const ClientPlan& plan) {
  ClientOptions options = client_options(plan);
  options.tls.alpn = {"h2"};
  options.pool.max_per_origin = plan.busy * plan.threads;
  options.pool.max_total = plan.busy * plan.threads;
  options.pool.max_idle_per_origin = plan.busy * plan.threads;
  options.pool.max_streams_per_connection = plan.streams;
  return options;
}

// The client side's state across its phases.
struct ClientRun {
  const ClientPlan& plan;
  Control& control;
  std::unique_ptr<Client> client;
  std::unique_ptr<Client> h2_client;  // the keep-alive client of an h2 run
  std::uint64_t warm_sent = 0;
  std::uint64_t warm_opened = 0;
  std::shared_ptr<Counters> open = std::make_shared<Counters>();
  std::size_t issued = 0;
};

void send_progress(ClientRun& run, std::uint64_t written, std::uint64_t ok, std::uint64_t errors) {
  run.control.send(LineWriter("progress")
                       .add("open", static_cast<double>(written))
                       .add("ok", static_cast<double>(ok))
                       .add("errors", static_cast<double>(errors))
                       .str());
}

// Issues one "/open" request per connection, at most plan.open_window handshakes in flight, until
// every request has gone out on its own connection (or failed). Returns the seconds it took.
double open_connections(ClientRun& run) {
  const ClientPlan& plan = run.plan;
  const auto start = Clock::now();
  const auto deadline = start + plan.open_budget;
  RequestOptions options;
  ClientTimeouts timeouts = client_options(plan).timeouts;
  timeouts.deadline = plan.open_budget + plan.open_budget + kDrainMargin;
  options.timeouts = timeouts;
  const std::size_t n = plan.connections;
  const std::size_t window = plan.open_window == 0 ? n : plan.open_window;
  const auto written = [&] { return run.client->stats().requests_sent - run.warm_sent; };
  auto last_progress = start;
  while (Clock::now() < deadline && written() + run.open->errors.load() < n) {
    while (run.issued < n && run.issued < written() + run.open->errors.load() + window) {
      Request request;
      request.url = plan.base_url + plan.open_path;
      run.client->request_async(std::move(request), options,
                                [c = run.open](Result<Response> r) { c->complete(r); });
      ++run.issued;
    }
    if (Clock::now() - last_progress >= kProgressEvery) {
      send_progress(run, written(), run.open->ok.load(), run.open->errors.load());
      last_progress = Clock::now();
    }
    std::this_thread::sleep_for(milliseconds(1));
  }
  send_progress(run, written(), run.open->ok.load(), run.open->errors.load());
  return seconds_since(start);
}

// The keep-alive phase's state: `busy` x `streams` workers, each with one request in flight.
struct KeepAlive {
  Client* client = nullptr;
  std::string url;
  bool h2 = false;
  Clock::time_point end;
  std::uint64_t max_requests = 0;
  std::atomic<std::uint64_t> started{0};
  Counters counters;
  std::atomic<std::size_t> running{0};
  std::vector<LatencyHistogram> latencies;  // one per worker: no locking
};

void issue(const std::shared_ptr<KeepAlive>& k, std::size_t worker) {
  if (Clock::now() >= k->end ||
      (k->max_requests > 0 && k->started.fetch_add(1) >= k->max_requests)) {
    k->running.fetch_sub(1);
    return;
  }
  const auto start = Clock::now();
  Request request;
  request.url = k->url;
  k->client->request_async(std::move(request), {}, [k, worker, start](Result<Response> r) {
    const auto us =
        std::chrono::duration_cast<std::chrono::microseconds>(Clock::now() - start).count();
    k->counters.complete(r, k->h2);
    if (r && r->status == 200) {
      k->latencies[worker].add(static_cast<std::uint64_t>(us));
    }
    issue(k, worker);
  });
}

// h2: one request per worker at once, so that the pool opens the busy connections (and fills each
// with `streams`) before the measured phase. Returns the first error, "" when all succeeded.
std::string open_h2_connections(Client& client, const std::string& url, std::size_t workers) {
  auto warm = std::make_shared<Counters>();
  for (std::size_t w = 0; w < workers; ++w) {
    Request request;
    request.url = url;
    client.request_async(std::move(request), {},
                         [warm](Result<Response> r) { warm->complete(r, true); });
  }
  const auto end = Clock::now() + milliseconds(20'000);
  while (warm->ok.load() + warm->errors.load() < workers && Clock::now() < end) {
    std::this_thread::sleep_for(milliseconds(1));
  }
  if (warm->ok.load() == workers) {
    return "";
  }
  return warm->errors.load() > 0 ? warm->first() : "opening the HTTP/2 connections timed out";
}

// Waits for the workers (progress lines meanwhile) until they are done or `hard_end`.
void await_workers(ClientRun& run, KeepAlive& k, Clock::time_point hard_end) {
  auto last_progress = Clock::now();
  while (k.running.load() > 0 && Clock::now() < hard_end) {
    if (Clock::now() - last_progress >= kProgressEvery) {
      send_progress(run, run.plan.connections, k.counters.ok.load(), k.counters.errors.load());
      last_progress = Clock::now();
    }
    std::this_thread::sleep_for(milliseconds(5));
  }
}

// `busy` connections (x `streams` with h2) send requests back to back for `duration` seconds
// (or max_requests).
std::string keepalive_phase(ClientRun& run) {
  auto k = std::make_shared<KeepAlive>();
  k->client = run.plan.h2 ? run.h2_client.get() : run.client.get();
  k->url = run.plan.base_url + run.plan.request_path;
  k->h2 = run.plan.h2;
  k->max_requests = run.plan.max_requests;
  const std::size_t workers = run.plan.busy * (run.plan.h2 ? run.plan.streams : 1);
  k->latencies.resize(workers);
  const std::uint64_t opened_before = k->client->stats().connections_opened;
  const std::string warm_error =
      run.plan.h2 ? open_h2_connections(*k->client, k->url, workers) : "";
  const Client::Stats stats_before = k->client->stats();
  const ProcessSnapshot before = take_process_snapshot();
  const auto start = Clock::now();
  k->end = start + std::chrono::duration_cast<Clock::duration>(
                       std::chrono::duration<double>(run.plan.duration));
  k->running.store(warm_error.empty() ? workers : 0);
  for (std::size_t w = 0; w < workers && warm_error.empty(); ++w) {
    issue(k, w);
  }
  await_workers(run, *k, k->end + kDrainMargin);
  const double seconds = seconds_since(start);
  const ProcessSnapshot after = take_process_snapshot();
  const Client::Stats stats_after = k->client->stats();
  LatencyHistogram all;
  if (k->running.load() == 0) {  // otherwise callbacks may still be writing into the histograms
    for (const LatencyHistogram& h : k->latencies) {
      all.merge(h);
    }
  }
  return LineWriter("done")
      .add("requests", static_cast<double>(k->counters.ok.load()))
      .add("sent", static_cast<double>(stats_after.requests_sent - stats_before.requests_sent))
      .add("errors", static_cast<double>(k->counters.errors.load() + k->running.load() +
                                         (warm_error.empty() ? 0 : 1)))
      .add("busy_opened", static_cast<double>(stats_after.connections_opened - opened_before))
      .add("seconds", seconds)
      .add("cpu_us", static_cast<double>(after.cpu_us - before.cpu_us))
      .add("latency", all.encode())
      .add("first_error", warm_error.empty() ? k->counters.first() : warm_error)
      .str();
}

int start_client(ClientRun& run) {
  run.client = std::make_unique<Client>(client_options(run.plan));
  const Result<Response> warm = run.client->get(run.plan.base_url + "/");
  if (!warm) {
    print_error(warm.error(), run.plan.base_url + "/");
    return 1;
  }
  run.client->close_idle_connections();
  if (run.plan.h2) {  // its loop thread and TLS context exist before the baseline too
    run.h2_client = std::make_unique<Client>(h2_client_options(run.plan));
    const Result<Response> warm_h2 = run.h2_client->get(run.plan.base_url + "/");
    if (!warm_h2) {
      print_error(warm_h2.error(), run.plan.base_url + "/");
      return 1;
    }
    if (warm_h2->version != HttpVersion::http2) {
      print_error(run.plan.base_url + " answered over HTTP/1.1 although only h2 was offered");
      return 1;
    }
    run.h2_client->close_idle_connections();
  }
  std::this_thread::sleep_for(milliseconds(200));
  run.warm_sent = run.client->stats().requests_sent;
  run.warm_opened = run.client->stats().connections_opened;
  return 0;
}

// Opens the connections, waits for their answers and sends the "idle" line.
void open_phase(ClientRun& run, const ProcessSnapshot& before) {
  const double open_seconds = open_connections(run);
  const std::uint64_t written = run.client->stats().requests_sent - run.warm_sent;
  run.control.send(LineWriter("written").add("n", static_cast<double>(written)).str());
  const auto drain_end = Clock::now() + run.plan.open_budget + kDrainMargin;
  while (run.open->ok.load() + run.open->errors.load() < run.issued && Clock::now() < drain_end) {
    std::this_thread::sleep_for(milliseconds(5));
  }
  std::this_thread::sleep_for(kSettle);
  const ProcessSnapshot idle = take_process_snapshot();
  ::malloc_trim(0);
  const ProcessSnapshot trimmed = take_process_snapshot();
  const std::uint64_t opened = run.client->stats().connections_opened - run.warm_opened;
  LineWriter line("idle");
  line.add("connections",
           static_cast<double>(std::min<std::uint64_t>(opened, run.plan.connections)))
      .add("wanted", static_cast<double>(run.plan.connections))
      .add("open_seconds", open_seconds)
      .add("open_errors",
           static_cast<double>(run.plan.connections -
                               std::min<std::uint64_t>(run.open->ok.load(), run.plan.connections)))
      .add("resumptions", static_cast<double>(run.client->stats().tls_resumptions))
      .add("first_error", run.open->first());
  run.control.send(add_memory(line, before, idle, trimmed).str());
}

}  // namespace

int run_server_side(const ServerPlan& plan, Control& control) {
  if (const Result<void> ready = init(); !ready) {
    print_error(ready.error(), "");
    return 1;
  }
  Gate gate(plan.expected, plan.release_at);
  const Response response = bench_response(plan.body_size);
  Result<std::unique_ptr<Server>> server = start_gated_server(plan, gate, response);
  if (!server) {
    print_error(server.error(), "");
    return 1;
  }
  control.send(LineWriter("listening").add("port", (*server)->port()).str());
  ::malloc_trim(0);
  const ProcessSnapshot before = take_process_snapshot();
  control.send("ready\n");
  const auto all_came = [&] { return plan.release_at > 0 && gate.received() >= plan.release_at; };
  int code = 1;
  if (control.wait_for("release", all_came)) {
    gate.release(response);
    if (control.wait_for("measure", all_came)) {
      std::this_thread::sleep_for(kSettle);
      const ProcessSnapshot idle = take_process_snapshot();
      ::malloc_trim(0);
      const ProcessSnapshot trimmed = take_process_snapshot();
      const Server::Stats stats = (*server)->stats();
      LineWriter line("idle");
      line.add("connections", static_cast<double>(stats.connections_open))
          .add("handshakes", static_cast<double>(stats.tls_handshakes));
      control.send(add_memory(line, before, idle, trimmed).str());
      control.wait_for("stop", [] { return false; });
      code = 0;
      const ProcessSnapshot end = take_process_snapshot();
      control.send(
          LineWriter("done")
              .add("requests", static_cast<double>((*server)->stats().requests - stats.requests))
              .add("cpu_us", static_cast<double>(end.cpu_us - trimmed.cpu_us))
              .str());
    }
  }
  (*server)->shutdown(milliseconds(1'000));
  return code;
}

int run_client_side(const ClientPlan& plan, Control& control) {
  if (const Result<void> ready = init(); !ready) {
    print_error(ready.error(), "");
    return 1;
  }
  ClientRun run{plan, control, nullptr, nullptr};
  if (const int code = start_client(run); code != 0) {
    return code;
  }
  ::malloc_trim(0);  // the baseline holds no freed pages either, so the trimmed delta is fair
  const ProcessSnapshot before = take_process_snapshot();
  control.send("ready\n");
  const auto yes = [] { return true; };
  if (!control.wait_for("open", yes)) {
    return 1;
  }
  open_phase(run, before);
  if (plan.hold > 0) {
    control.send(LineWriter("holding").add("seconds", plan.hold).str());
    std::this_thread::sleep_for(std::chrono::duration<double>(plan.hold));
  }
  if (!control.wait_for("go", yes)) {
    return 1;
  }
  control.send(keepalive_phase(run));
  control.wait_for("exit", yes);
  run.h2_client.reset();
  run.client.reset();
  return 0;
}

}  // namespace holdfast::cli::bench
