// `holdfast probe --idle-timeout`: rounds of parallel idle connections, each on a Client of its
// own, narrow the interval between the longest idle time that survived and the shortest that
// failed.
#include "probe_command.h"

#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <condition_variable>
#include <cstdio>
#include <cstdlib>
#include <limits>
#include <mutex>
#include <optional>
#include <string>
#include <string_view>
#include <system_error>
#include <thread>
#include <vector>

#include <CLI/CLI.hpp>

#include "exit_codes.h"
#include "holdfast/client.h"
#include "holdfast/error.h"
#include "holdfast/url.h"

namespace holdfast::cli {
namespace {

using Clock = std::chrono::steady_clock;
using Seconds = std::chrono::duration<double>;

constexpr double kPrecision = 0.10;  // the search stops once (failed - survived) / survived <= this
constexpr double kStepRatio = 1.09;  // narrowing rounds space their idle times by at most this
constexpr double kShortestHold = 0.1;  // below this, timer and round-trip noise dominate
constexpr int kMaxRounds = 8;
constexpr double kAutoAnswerFloor = 2.0;     // auto response timeout: at least this many seconds,
constexpr double kAutoAnswerFactor = 4.0;    // or this many times the first exchange's duration,
constexpr double kAutoAnswerCeiling = 30.0;  // but never more than this
constexpr std::chrono::milliseconds kProgressEvery{250};

// How one probe connection ended.
enum class Outcome {
  pending,
  survived,      // the request after the idle time worked, on the same connection
  closed,        // closed (FIN) while idle or as the request went out
  reset,         // the request after the idle time was answered with a reset
  silent_drop,   // no answer at all within the response timeout
  other_error,   // any other failure after the idle time
  cancelled,     // not needed: a shorter idle time already failed
  setup_failed,  // the first request, before the idle time, failed
};

bool is_failure(Outcome o) {
  return o == Outcome::closed || o == Outcome::reset || o == Outcome::silent_drop ||
         o == Outcome::other_error;
}

std::string_view outcome_name(Outcome o) {
  switch (o) {
    case Outcome::closed: return "closed";
    case Outcome::reset: return "reset";
    case Outcome::silent_drop: return "silent_drop";
    case Outcome::other_error: return "error";
    default: return "none";
  }
}

// One connection: opened with a first request, held idle for `hold` seconds, then used again.
struct Probe {
  double hold = 0;
  Outcome outcome = Outcome::pending;
  std::error_code error;          // the failure, when there is one
  double answer_limit = 0;        // the response timeout of the request after the idle time
  std::optional<double> hint;     // Keep-Alive: timeout= of the first response
  bool connection_close = false;  // the first response said Connection: close
};

std::chrono::milliseconds to_ms(double seconds) {
  return std::chrono::milliseconds(static_cast<long long>(std::ceil(seconds * 1000.0)));
}

ClientOptions probe_client_options(const ProbeFlags& f) {
  ClientOptions options;
  // Keep-alive probes would refresh the very state whose expiry is being measured.
  options.socket.keepalive = false;
  options.tls.insecure_skip_verify = f.insecure;
  options.tls.ca_file = f.cacert;
  options.pool.max_per_origin = 1;
  options.pool.idle_timeout = to_ms(f.max + 60);  // the client itself must not end the idle time
  options.retry = false;  // a transparent retry would hide the failure being looked for
  options.threads = 1;
  return options;
}

Request probe_request(const ProbeFlags& f) {
  Request request;
  request.method = f.method;
  request.url = f.url;
  return request;
}

// The seconds of a `Keep-Alive: timeout=N[, max=M]` header (RFC 2068 §19.7.1.1), if any.
std::optional<double> keep_alive_hint(const Headers& headers) {
  const auto value = headers.get("Keep-Alive");
  if (!value) {
    return std::nullopt;
  }
  const std::size_t at = value->find("timeout=");
  if (at == std::string_view::npos) {
    return std::nullopt;
  }
  const std::string number(value->substr(at + 8, value->find(',', at) - at - 8));
  char* end = nullptr;
  const double seconds = std::strtod(number.c_str(), &end);
  return end != number.c_str() && seconds >= 0 ? std::optional<double>(seconds) : std::nullopt;
}

Outcome classify(const Result<Response>& response) {
  if (response) {
    // A fresh connection means the pool found the idle one closed (FIN or reset) and replaced it.
    return response->timings.reused_connection ? Outcome::survived : Outcome::closed;
  }
  const std::error_code ec = response.error();
  if (ec == Errc::response_header_timeout || ec == Errc::user_timeout ||
      ec == Errc::keepalive_lost || ec == Errc::idle_read_timeout ||
      ec == Errc::deadline_exceeded) {
    return Outcome::silent_drop;
  }
  if (ec == std::errc::connection_reset) {
    return Outcome::reset;
  }
  if (ec == Errc::closed_before_response || ec == Errc::connection_closed ||
      ec == std::errc::broken_pipe) {
    return Outcome::closed;
  }
  return Outcome::other_error;
}

// A set of probes run in parallel, one thread and one Client each. Once a probe fails, the probes
// holding longer are cancelled: the idle timeout is below their idle time already.
class Round {
 public:
  Round(const ProbeFlags& flags, const std::vector<double>& holds)
      : flags_(flags), options_(probe_client_options(flags)) {
    for (const double hold : holds) {
      Probe probe;
      probe.hold = hold;
      probes_.push_back(probe);
    }
  }

  // Runs every probe; calls `on_tick` with the probes (under the round's lock) every 250 ms.
  template <typename Tick>
  void run(const Tick& on_tick) {
    std::vector<std::thread> threads;
    threads.reserve(probes_.size());
    for (Probe& probe : probes_) {
      threads.emplace_back([this, &probe] { run_one(probe); });
    }
    {
      std::unique_lock lock(mutex_);
      while (done_ < probes_.size()) {
        changed_.wait_for(lock, kProgressEvery);
        on_tick(probes_);
      }
    }
    for (std::thread& thread : threads) {
      thread.join();
    }
  }

  [[nodiscard]] const std::vector<Probe>& probes() const { return probes_; }

 private:
  void run_one(Probe& probe) {
    Client client(options_);
    Probe result = probe;
    const Result<Response> first = client.request(probe_request(flags_));
    const Clock::time_point idle_from = Clock::now();
    if (first) {
      result.hint = keep_alive_hint(first->headers);
      const auto connection = first->headers.get("Connection");
      result.connection_close = connection && iequals(*connection, "close");
    }
    if (!first || result.connection_close) {
      result.outcome = Outcome::setup_failed;
      result.error = first ? std::error_code() : first.error();
      finish(probe, result);
      return;
    }
    const auto until = idle_from + std::chrono::duration_cast<Clock::duration>(Seconds(probe.hold));
    if (!wait_idle(probe.hold, until)) {
      result.outcome = Outcome::cancelled;
      finish(probe, result);
      return;
    }
    result.answer_limit = answer_limit(*first);
    RequestOptions use;
    use.timeouts = options_.timeouts;
    use.timeouts->response_headers = to_ms(result.answer_limit);
    const Result<Response> second = client.request(probe_request(flags_), use);
    result.outcome = classify(second);
    result.error = second ? std::error_code() : second.error();
    finish(probe, result);
  }

  // The response timeout after the idle time: --response-timeout, or a few times what the first
  // exchange (connect included) took, so that a slow path is not mistaken for a silent drop.
  [[nodiscard]] double answer_limit(const Response& first) const {
    if (flags_.response_timeout > 0) {
      return flags_.response_timeout;
    }
    const double took = std::chrono::duration<double>(first.timings.total).count();
    return std::clamp(kAutoAnswerFactor * took, kAutoAnswerFloor, kAutoAnswerCeiling);
  }

  // Sleeps until `until`; false if cancelled meanwhile (a shorter hold failed).
  bool wait_idle(double hold, Clock::time_point until) {
    std::unique_lock lock(mutex_);
    return !changed_.wait_until(lock, until, [&] { return hold > cutoff_; });
  }

  void finish(Probe& probe, const Probe& result) {
    const std::lock_guard lock(mutex_);
    probe = result;
    if (is_failure(result.outcome)) {
      cutoff_ = std::min(cutoff_, result.hold);
    }
    ++done_;
    changed_.notify_all();
  }

  const ProbeFlags& flags_;
  const ClientOptions options_;
  std::vector<Probe> probes_;
  std::mutex mutex_;
  std::condition_variable changed_;
  double cutoff_ = std::numeric_limits<double>::infinity();
  std::size_t done_ = 0;
};

// What the rounds found so far.
struct Finding {
  double survived = 0;             // longest idle time after which the connection worked (0: none)
  std::optional<double> failed;    // shortest idle time above `survived` after which it did not
  Outcome end = Outcome::pending;  // how the connection at `failed` ended
  std::error_code end_error;
  double end_answer_limit = 0;
  std::optional<double> hint;      // the server's Keep-Alive: timeout=
  std::size_t early_failures = 0;  // failures at or below `survived` (a flaky path)
  std::size_t connections = 0;
  int rounds = 0;
  std::error_code setup_error;  // why a first request failed, if every one did
  bool connection_close = false;
};

void absorb(Finding& finding, const std::vector<Probe>& probes) {
  ++finding.rounds;
  std::size_t set_up = 0;
  for (const Probe& p : probes) {
    finding.connections += p.outcome == Outcome::setup_failed ? 0 : 1;
    set_up += p.outcome == Outcome::setup_failed ? 0 : 1;
    finding.hint = p.hint ? p.hint : finding.hint;
    finding.connection_close = finding.connection_close || p.connection_close;
    if (p.outcome == Outcome::setup_failed && !finding.setup_error) {
      finding.setup_error = p.error;
    }
    if (p.outcome == Outcome::survived) {
      finding.survived = std::max(finding.survived, p.hold);
    }
  }
  if (set_up > 0) {
    finding.setup_error = {};
  }
  // Failures are kept apart from survivors so that one flaky failure cannot hide a longer survivor.
  for (const Probe& p : probes) {
    if (!is_failure(p.outcome)) {
      continue;
    }
    if (p.hold <= finding.survived) {
      ++finding.early_failures;
    } else if (!finding.failed || p.hold < *finding.failed) {
      finding.failed = p.hold;
      finding.end = p.outcome;
      finding.end_error = p.error;
      finding.end_answer_limit = p.answer_limit;
    }
  }
  if (finding.failed && *finding.failed <= finding.survived) {
    ++finding.early_failures;
    finding.failed.reset();
  }
}

// Round 1: 1 s, 1.41 s, 2 s, 2.83 s, ... (factor sqrt 2) up to --max.
std::vector<double> first_holds(double max) {
  std::vector<double> holds;
  for (int k = 0; k < 64; ++k) {
    const double hold = std::pow(2.0, k / 2.0);
    if (hold >= max * 0.999) {
      break;
    }
    holds.push_back(hold);
  }
  holds.push_back(max);
  return holds;
}

// The idle times of the next round, or none when the finding is precise enough.
std::vector<double> next_holds(const Finding& f, std::size_t parallel) {
  std::vector<double> holds;
  if (!f.failed || f.rounds >= kMaxRounds) {
    return holds;
  }
  const double hi = *f.failed;
  if (f.survived <= 0) {
    // Even the shortest idle time failed: look below it, halving by sqrt 2.
    for (std::size_t k = 1; k <= parallel && hi * std::pow(2.0, -0.5 * k) >= kShortestHold; ++k) {
      holds.push_back(hi * std::pow(2.0, -0.5 * static_cast<double>(k)));
    }
    return holds;
  }
  const double lo = f.survived;
  if ((hi - lo) / lo <= kPrecision || hi - lo < 0.02) {
    return holds;
  }
  const auto needed = static_cast<std::size_t>(std::ceil(std::log(hi / lo) / std::log(kStepRatio)));
  const std::size_t n = std::clamp<std::size_t>(needed - 1, 1, parallel);
  const double step = std::pow(hi / lo, 1.0 / static_cast<double>(n + 1));
  for (std::size_t i = 1; i <= n; ++i) {
    holds.push_back(lo * std::pow(step, static_cast<double>(i)));
  }
  return holds;
}

std::string format_seconds(double s) {
  char text[64];
  if (s < 10) {
    std::snprintf(text, sizeof text, "%.2f s", s);
  } else if (s < 120) {
    std::snprintf(text, sizeof text, "%.1f s", s);
  } else {
    std::snprintf(text, sizeof text, "%.0f s (%d min %d s)", s, static_cast<int>(s) / 60,
                  static_cast<int>(s) % 60);
  }
  return text;
}

// The live progress line (stderr, terminals only).
class Progress {
 public:
  explicit Progress(bool enabled) : enabled_(enabled), start_(Clock::now()) {}

  void show(const Finding& f, const std::vector<Probe>& probes) const {
    if (!enabled_) {
      return;
    }
    std::size_t idle = 0;
    for (const Probe& p : probes) {
      idle += p.outcome == Outcome::pending ? 1 : 0;
    }
    const std::string survived = f.survived > 0 ? format_seconds(f.survived) : "-";
    const std::string failed = f.failed ? format_seconds(*f.failed) : "-";
    std::fprintf(stderr,
                 "\r\033[Kround %d: %zu of %zu connections still idle | survived %s | "
                 "failed %s | %.0f s elapsed",
                 f.rounds + 1, idle, probes.size(), survived.c_str(), failed.c_str(), elapsed());
    std::fflush(stderr);
  }

  void clear() const {
    if (enabled_) {
      std::fprintf(stderr, "\r\033[K");
      std::fflush(stderr);
    }
  }

  [[nodiscard]] double elapsed() const { return Seconds(Clock::now() - start_).count(); }

 private:
  bool enabled_;
  Clock::time_point start_;
};

// Folds a round's probes into a live copy of the finding, for the progress line only.
Finding with_round(const Finding& base, const std::vector<Probe>& probes) {
  Finding live = base;
  absorb(live, probes);
  live.rounds = base.rounds;
  return live;
}

std::string end_description(const Finding& f) {
  switch (f.end) {
    case Outcome::silent_drop: {
      char text[200];
      std::snprintf(text, sizeof text,
                    "silent drop: no answer within %.1f s, no FIN, no reset (a middlebox or NAT "
                    "forgot the flow)",
                    f.end_answer_limit);
      return text;
    }
    case Outcome::reset:
      return "reset: the request after the idle time was answered with a TCP reset";
    case Outcome::closed:
      return "closed: the server (or a middlebox) closed the connection (FIN) while it was idle";
    default: return "error: " + describe(f.end_error);
  }
}

std::string hint_text(const Finding& f) {
  if (!f.hint) {
    return "none (no Keep-Alive: timeout= in the responses)";
  }
  return "the server announces Keep-Alive: timeout=" + format_seconds(*f.hint);
}

// What to configure, by who ended the connection.
std::string advice(const Finding& f) {
  const std::string below = format_seconds(f.survived);
  if (f.end == Outcome::closed) {
    return "The server ends idle connections: keep idle pooled connections below " + below +
           " (PoolOptions::idle_timeout) so that none is reused as it closes; TCP keep-alive "
           "does not count as activity for the server.";
  }
  return "Keep TCP keep-alive idle and interval below " + below +
         " on this path (--keepalive-idle, SocketOptions::keepalive_idle) so that its probes keep "
         "the flow alive, and idle pooled connections below it too (PoolOptions::idle_timeout).";
}

void print_text(const ProbeFlags& flags, const Finding& f, double elapsed) {
  if (!f.failed) {
    std::printf("No idle timeout up to %s on the path to %s: every connection still worked.\n",
                format_seconds(f.survived).c_str(), flags.url.c_str());
  } else if (f.survived <= 0) {
    std::printf("Idle timeout of the path to %s: below %s (even the shortest idle time failed)\n",
                flags.url.c_str(), format_seconds(*f.failed).c_str());
  } else {
    std::printf("Idle timeout of the path to %s: between %s and %s\n", flags.url.c_str(),
                format_seconds(f.survived).c_str(), format_seconds(*f.failed).c_str());
  }
  if (f.survived > 0) {
    std::printf("  longest idle that survived  %s\n", format_seconds(f.survived).c_str());
  }
  if (f.failed) {
    std::printf("  shortest idle that failed   %s\n", format_seconds(*f.failed).c_str());
    std::printf("  how it ended                %s\n", end_description(f).c_str());
  }
  std::printf("  server hint                 %s\n", hint_text(f).c_str());
  std::printf(
      "  measured with               %zu connections (keep-alive off) in %d round%s, %.0f s\n",
      f.connections, f.rounds, f.rounds == 1 ? "" : "s", elapsed);
  if (f.early_failures > 0) {
    std::printf(
        "  note: %zu connection(s) failed after a shorter idle time than one that "
        "survived: the path is flaky or its timeout varies\n",
        f.early_failures);
  }
  if (f.failed && f.survived > 0) {
    std::printf("%s\n", advice(f).c_str());
  }
}

std::string json_string(std::string_view text) {
  std::string out = "\"";
  for (const char c : text) {
    if (c == '"' || c == '\\') {
      out += '\\';
      out += c;
    } else if (static_cast<unsigned char>(c) < 0x20) {
      char escaped[8];
      std::snprintf(escaped, sizeof escaped, "\\u%04x", static_cast<unsigned>(c));
      out += escaped;
    } else {
      out += c;
    }
  }
  return out + "\"";
}

std::string json_number(std::optional<double> value) {
  if (!value) {
    return "null";
  }
  char text[32];
  std::snprintf(text, sizeof text, "%.3f", *value);
  return text;
}

void print_json(const ProbeFlags& flags, const Finding& f, double elapsed) {
  // Not an optional built here: g++ 12 -O2 then warns of a maybe-uninitialized value.
  const std::string survived = f.survived > 0 ? json_number(f.survived) : std::string("null");
  std::printf(
      "{\"url\":%s,\"found\":%s,\"survived_s\":%s,\"failed_s\":%s,\"end\":%s,"
      "\"end_detail\":%s,\"keep_alive_hint_s\":%s,\"max_s\":%s,\"rounds\":%d,"
      "\"connections\":%zu,\"early_failures\":%zu,\"elapsed_s\":%s}\n",
      json_string(flags.url).c_str(), f.failed ? "true" : "false", survived.c_str(),
      json_number(f.failed).c_str(), json_string(outcome_name(f.end)).c_str(),
      json_string(f.failed ? end_description(f) : "").c_str(), json_number(f.hint).c_str(),
      json_number(flags.max).c_str(), f.rounds, f.connections, f.early_failures,
      json_number(elapsed).c_str());
}

int usage(const std::string& message) {
  print_error(message);
  return static_cast<int>(ExitCode::usage);
}

// Checks the flags and the URL; returns the exit code of a problem, or 0.
int check_flags(const ProbeFlags& f) {
  if (!f.idle_timeout) {
    return usage("say what to probe: --idle-timeout (the only measurement so far)");
  }
  if (f.method.empty()) {
    return usage("--method must not be empty");
  }
  const Result<Url> url = parse_url(f.url);
  if (!url) {
    print_error(url.error(), f.url);
    return static_cast<int>(exit_code_for(url.error()));
  }
  return 0;
}

// Runs rounds until the finding is precise enough (or no connection could be set up at all).
Finding search(const ProbeFlags& flags, const Progress& progress) {
  Finding finding;
  std::vector<double> holds = first_holds(flags.max);
  while (!holds.empty()) {
    Round round(flags, holds);
    round.run([&](const std::vector<Probe>& probes) {
      progress.show(with_round(finding, probes), probes);
    });
    absorb(finding, round.probes());
    if (finding.connections == 0 || finding.connection_close) {
      break;
    }
    holds = next_holds(finding, flags.parallel);
  }
  progress.clear();
  return finding;
}

}  // namespace

void add_probe_command(CLI::App& app) {
  static ProbeFlags f;
  CLI::App* probe = app.add_subcommand(
      "probe",
      "measure the network path to a server: --idle-timeout finds how long an idle "
      "connection survives");
  probe->add_option("url", f.url, "absolute http:// or https:// URL; its path is requested")
      ->required();
  probe->add_flag("--idle-timeout", f.idle_timeout,
                  "find the idle timeout of the path (server, load balancer, NAT)");
  probe->add_option("--max", f.max, "longest idle time to try, in SECONDS")
      ->check(CLI::Range(0.1, 86400.0))
      ->capture_default_str();
  probe
      ->add_option("--response-timeout", f.response_timeout,
                   "SECONDS without an answer that count as a silent drop (default: 4 x the "
                   "first exchange, 2..30 s)")
      ->check(CLI::Range(0.0, 600.0));
  probe->add_option("--parallel", f.parallel, "connections per narrowing round")
      ->check(CLI::Range(1, 64))
      ->capture_default_str();
  probe->add_option("--method", f.method, "request METHOD sent before and after the idle time")
      ->capture_default_str();
  probe->add_flag("--json", f.json, "print one JSON object instead of the text report");
  probe->add_flag("--no-progress", f.no_progress, "no progress line, even on a terminal");
  probe->add_flag("-k,--insecure", f.insecure, "do not verify the server certificate");
  probe->add_option("--cacert", f.cacert, "trust the CA certificates in this PEM FILE");
  probe->callback([] { std::exit(run_probe(f)); });
}

int run_probe(const ProbeFlags& flags) {
  if (const int code = check_flags(flags); code != 0) {
    return code;
  }
  const Progress progress(!flags.no_progress && ::isatty(STDERR_FILENO) == 1);
  const Finding finding = search(flags, progress);
  if (finding.connection_close) {
    print_error("the server answers with Connection: close: no connection stays open to probe");
    return static_cast<int>(ExitCode::failure);
  }
  if (finding.connections == 0) {
    print_error(finding.setup_error, flags.url);
    return static_cast<int>(exit_code_for(finding.setup_error));
  }
  if (flags.json) {
    print_json(flags, finding, progress.elapsed());
  } else {
    print_text(flags, finding, progress.elapsed());
  }
  return 0;
}

}  // namespace holdfast::cli
