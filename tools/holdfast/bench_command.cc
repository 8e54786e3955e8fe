// `holdfast bench`: the flags, their checks, the number of processes, and the standalone
// --server-only / --client-only modes; method and limits in bench/README.md.
#include "bench_command.h"

#include <pthread.h>
#include <signal.h>

#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <functional>
#include <string>

#include <CLI/CLI.hpp>

#include "bench_multi.h"
#include "bench_report.h"
#include "bench_side.h"
#include "bench_stats.h"
#include "exit_codes.h"
#include "holdfast/certs.h"

namespace holdfast::cli {
namespace {

using bench::Control;
using bench::Line;

// Share of the per-process descriptor capacity a process is planned for: SO_REUSEPORT spreads
// connections over the servers by hash, not exactly evenly.
constexpr double kPlannedShare = 0.85;
// Client source addresses: 127.0.0.2 .. 127.0.0.201.
constexpr std::size_t kMaxProcesses = 200;

int usage(const std::string& message) {
  print_error(message);
  return static_cast<int>(ExitCode::usage);
}

// Ephemeral ports one source address has towards one server port.
std::size_t ephemeral_ports() {
  std::ifstream in("/proc/sys/net/ipv4/ip_local_port_range");
  std::size_t low = 32768;
  std::size_t high = 60999;
  in >> low >> high;
  return high >= low ? high - low + 1 : 0;
}

// The connections one process of a multi-process run is planned to hold.
std::size_t planned_per_process() {
  const auto fds = static_cast<double>(bench::process_capacity(1));
  const auto ports = static_cast<double>(ephemeral_ports());
  return static_cast<std::size_t>(std::min(fds, ports) * kPlannedShare);
}

int check_split_flags(const BenchFlags& f) {
  if (f.server_only && f.client_only) {
    return usage("--server-only does not go with --client-only or --target");
  }
  if (!f.write_cert.empty() && !f.server_only) {
    return usage("--write-cert goes with --server-only");
  }
  if (f.client_only && f.target.empty()) {
    return usage("--client-only needs --target URL");
  }
  if (f.processes > 1) {
    return usage("--processes is for the multi-process run, not --server-only or --client-only");
  }
  const std::size_t capacity = bench::process_capacity(1);
  if (f.connections + f.busy > capacity) {
    return usage("--connections " + std::to_string(f.connections) + " (+ --busy " +
                 std::to_string(f.busy) + ") needs one descriptor per connection; the open-file " +
                 "limit allows " + std::to_string(capacity) + " in one process (run `holdfast " +
                 "bench` without --server-only/--client-only: it spreads them over --processes)");
  }
  return 0;
}

int check_flags(BenchFlags& f) {
  if (f.busy == 0) {
    f.busy = f.h2 ? 1 : 64;
  }
  if (f.connections == 0 || f.duration <= 0 || f.streams == 0) {
    return usage("--connections, --duration and --streams must be positive");
  }
  if (!f.target.empty() && !f.server_only) {
    f.client_only = true;
  }
  if (f.server_only || f.client_only) {
    return check_split_flags(f);
  }
  const std::size_t per_process = planned_per_process();
  const std::size_t total = f.connections + f.busy;
  if (f.processes == 0) {
    f.processes = per_process == 0 ? 1 : (total + per_process - 1) / per_process;
  }
  const std::size_t need = per_process == 0 ? 0 : (total + per_process - 1) / per_process;
  if (f.processes < need || f.processes > kMaxProcesses) {
    return usage("--processes " + std::to_string(f.processes) + " cannot hold --connections " +
                 std::to_string(f.connections) + " + --busy " + std::to_string(f.busy) +
                 ": one process is planned for at most " + std::to_string(per_process) +
                 " connections (open-file limit and ephemeral ports); use between " +
                 std::to_string(need) + " and " + std::to_string(kMaxProcesses) +
                 " or leave --processes out");
  }
  return 0;
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

// --server-only: phases advance by themselves once --connections requests came; "stop" is
// SIGINT/SIGTERM. Prints "listening on URL", the idle figures and the final line.
class StandaloneServerControl : public Control {
 public:
  StandaloneServerControl(const BenchFlags& f, sigset_t signals) : f_(f), signals_(signals) {}
  bool wait_for(const char* /*command*/, const std::function<bool()>& local) override {
    const timespec tick{0, 50'000'000};
    while (!local()) {
      if (::sigtimedwait(&signals_, nullptr, &tick) > 0) {
        return false;
      }
    }
    return true;
  }
  void send(const std::string& text) override {
    const Line line = Line::parse(text);
    if (line.event == "listening") {
      std::printf("listening on https://127.0.0.1:%.0f\n", line.number("port"));
    } else if (line.event == "idle") {
      idle_ = line;
      print_idle(line);
    } else if (line.event == "done") {
      std::printf(f_.json ? "{\"mode\":\"server-only\",\"phase\":\"final\",\"requests\":%.0f,"
                            "\"cpu_us_per_request\":%.2f}\n"
                          : "  requests served after that       %.0f, %.1f us CPU each\n",
                  line.number("requests"),
                  bench::per(line.number("cpu_us"), line.number("requests")));
    }
    std::fflush(stdout);
  }

 private:
  void print_idle(const Line& l) const {
    const double n = l.number("connections");
    std::printf(f_.json ? "{\"mode\":\"server-only\",\"phase\":\"idle\",\"connections\":%.0f,"
                          "\"tls_handshakes\":%.0f,\"cpu_us_per_handshake\":%.1f,"
                          "\"rss_bytes_per_connection\":%.1f,"
                          "\"rss_trimmed_bytes_per_connection\":%.1f,"
                          "\"heap_bytes_per_connection\":%.1f}\n"
                        : "holdfast bench (server-only: figures are for this server process)\n"
                          "  connections held                  %.0f (%.0f TLS handshakes)\n"
                          "  CPU per handshake                 %.1f us (incl. its one request)\n"
                          "  RSS per idle connection           %.1f B (%.1f B after malloc_trim)\n"
                          "  heap per idle connection          %.1f B (malloc + slabs)\n",
                n, l.number("handshakes"), bench::per(l.number("cpu_us"), n),
                bench::per(l.number("rss"), n), bench::per(l.number("rss_trimmed"), n),
                bench::per(l.number("heap"), n));
  }
  const BenchFlags& f_;
  sigset_t signals_;
  Line idle_;
};

// --client-only: every phase starts at once; keeps the "idle" and "done" lines for the report.
class StandaloneClientControl : public Control {
 public:
  bool wait_for(const char* /*command*/, const std::function<bool()>& local) override {
    return local();
  }
  void send(const std::string& text) override {
    Line line = Line::parse(text);
    if (line.event == "progress") {
      progress_.show("client", static_cast<std::uint64_t>(line.number("open")),
                     static_cast<std::uint64_t>(line.number("ok")),
                     static_cast<std::uint64_t>(line.number("errors")));
    } else if (line.event == "holding") {
      progress_.done();
      std::fprintf(stderr, "holdfast bench: holding the idle connections for %g s\n",
                   line.number("seconds"));
    } else if (line.event == "idle" || line.event == "done") {
      lines_[line.event] = std::move(line);
    }
  }
  void finish(bench::Summary& s) {
    progress_.done();
    s.add_client(lines_["idle"], lines_["done"]);
  }

 private:
  bench::Progress progress_;
  std::map<std::string, Line> lines_;
};

int run_server_only(const BenchFlags& f) {
  const sigset_t signals = block_stop_signals();
  const Result<GeneratedCertificate> cert =
      generate_self_signed_certificate({"localhost"}, {"127.0.0.1"}, 1);
  if (!cert) {
    print_error(cert.error(), "");
    return 1;
  }
  if (!f.write_cert.empty()) {
    std::ofstream out(f.write_cert, std::ios::binary | std::ios::trunc);
    out << cert->cert_pem;
    out.close();
    if (!out) {
      print_error("could not write " + f.write_cert);
      return static_cast<int>(ExitCode::write_error);
    }
  }
  bench::ServerPlan plan;
  plan.threads = f.threads;
  plan.cert_pem = cert->cert_pem;
  plan.key_pem = cert->key_pem;
  plan.body_size = f.body_size;
  plan.expected = f.connections;
  plan.release_at = f.connections;
  plan.h2 = f.h2;
  StandaloneServerControl control(f, signals);
  return bench::run_server_side(plan, control);
}

// Prints the report and returns the exit code for it.
int report(const BenchFlags& f, const bench::Summary& s, int code) {
  std::fputs((f.json ? bench::render_json(s) : bench::render_table(s)).c_str(), stdout);
  std::fflush(stdout);
  if (code == 0 && s.client.connections < static_cast<double>(f.connections)) {
    print_error("only " + std::to_string(static_cast<long long>(s.client.connections)) + " of " +
                std::to_string(f.connections) +
                " connections were opened: the target answered /open before all were open");
    return 1;
  }
  if (code == 0 && s.errors() > 0) {
    print_error("the run had errors; first: " + s.first_error);
    return 1;
  }
  if (code == 0 && s.requests_sent != s.requests) {
    print_error(std::to_string(static_cast<long long>(s.requests_sent)) +
                " keep-alive requests were sent but " +
                std::to_string(static_cast<long long>(s.requests)) + " responses came back");
    return 1;
  }
  return code;
}

int run_client_only(const BenchFlags& f) {
  bench::ClientPlan plan;
  // A target with a path other than "/" is used for every request (e.g. a peer server's route).
  const std::size_t scheme = f.target.find("://");
  const std::size_t slash = f.target.find('/', scheme == std::string::npos ? 0 : scheme + 3);
  plan.base_url = f.target.substr(0, slash);
  if (slash != std::string::npos && f.target.substr(slash) != "/") {
    plan.open_path = f.target.substr(slash);
    plan.request_path = plan.open_path;
  }
  plan.hold = f.hold;
  plan.open_window = f.open_window;
  plan.ca_file = f.cacert;
  plan.threads = f.threads;
  plan.connections = f.connections;
  plan.busy = f.busy;
  plan.duration = f.duration;
  plan.max_requests = f.requests;
  plan.resumption = f.resumption;
  plan.h2 = f.h2;
  plan.streams = f.streams;
  plan.open_budget =
      std::chrono::milliseconds(20'000 + 4 * static_cast<std::int64_t>(f.connections));
  StandaloneClientControl control;
  const int code = bench::run_client_side(plan, control);
  bench::Summary s;
  s.mode = "client-only";
  s.target = plan.base_url;
  s.threads = f.threads;
  s.busy = f.busy;
  s.streams = f.h2 ? f.streams : 1;
  s.protocol = f.h2 ? "h2" : "http/1.1";
  s.body_size = f.body_size;
  s.wanted = f.connections;
  control.finish(s);
  return report(f, s, code);
}

int run_multi(const BenchFlags& f) {
  bench::MultiPlan plan;
  plan.processes = f.processes;
  plan.connections = f.connections;
  plan.busy = f.busy;
  plan.threads = f.threads;
  plan.body_size = f.body_size;
  plan.duration = f.duration;
  plan.max_requests = f.requests;
  plan.resumption = f.resumption;
  plan.h2 = f.h2;
  plan.streams = f.streams;
  bench::Summary s;
  const int code = bench::run_multi_process(plan, s);
  return report(f, s, code);
}

}  // namespace

void add_bench_command(CLI::App& app) {
  static BenchFlags f;
  CLI::App* bench = app.add_subcommand(
      "bench", "measure idle TLS connection memory, handshakes/s and keep-alive requests/s");
  bench->add_option("--connections", f.connections, "idle TLS connections to open and hold")
      ->capture_default_str();
  bench
      ->add_option("--busy", f.busy,
                   "connections sending requests in the keep-alive phase (0: 64, or 1 with --h2)")
      ->capture_default_str();
  bench->add_option("--duration", f.duration, "seconds of the keep-alive phase (at most)")
      ->check(CLI::Range(0.1, 3600.0))
      ->capture_default_str();
  bench
      ->add_option("--requests", f.requests,
                   "end the keep-alive phase after this many requests (0: only --duration)")
      ->capture_default_str();
  bench->add_option("--body-size", f.body_size, "response body bytes")
      ->check(CLI::Range(0, 16 << 20))
      ->capture_default_str();
  bench->add_option("--threads", f.threads, "loop threads of each process")
      ->check(CLI::Range(1, 64))
      ->capture_default_str();
  bench
      ->add_option("--processes", f.processes,
                   "server processes (one port, SO_REUSEPORT) and client processes (one source "
                   "address 127.0.0.x each); 0: as many as the open-file limit requires")
      ->capture_default_str();
  CLI::Option* h2 = bench->add_flag(
      "--h2", f.h2,
      "keep-alive phase over HTTP/2 (ALPN h2 only; the idle phase stays HTTP/1.1): --streams "
      "requests in flight on each of the --busy connections");
  bench->add_option("--streams", f.streams, "--h2: requests in flight per busy connection")
      ->needs(h2)
      ->capture_default_str();
  bench->add_flag("--resumption", f.resumption, "resume TLS sessions instead of full handshakes");
  bench->add_flag("--json", f.json, "print JSON instead of the table");
  bench->add_flag("--server-only", f.server_only,
                  "only a server: print its URL, its memory once --connections are open, then "
                  "serve until SIGINT/SIGTERM");
  bench->add_option("--write-cert", f.write_cert, "--server-only: write the certificate PEM here");
  bench->add_flag("--client-only", f.client_only, "only a client, against --target");
  bench->add_option("--target", f.target,
                    "URL of an outside server to drive (a `holdfast bench --server-only`, nginx, "
                    "...): only the client side is measured");
  bench
      ->add_option("--open-window", f.open_window,
                   "--client-only: handshakes in flight while opening; only for a target that "
                   "holds its answers (`bench --server-only`); 0: every request at once")
      ->capture_default_str();
  bench
      ->add_option("--hold", f.hold,
                   "--client-only: seconds to hold the idle connections before the keep-alive "
                   "phase (prints a line on stderr when they are all open)")
      ->check(CLI::Range(0.0, 3600.0));
  bench->add_option("--cacert", f.cacert, "CA PEM FILE for --target")->check(CLI::ExistingFile);
  bench->callback([] { std::exit(run_bench(f)); });
}

int run_bench(const BenchFlags& flags) {
  BenchFlags f = flags;
  if (const int code = check_flags(f); code != 0) {
    return code;
  }
  if (f.server_only) {
    return run_server_only(f);
  }
  return f.client_only ? run_client_only(f) : run_multi(f);
}

}  // namespace holdfast::cli
