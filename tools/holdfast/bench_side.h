// `holdfast bench` sides: the server process and the client process of a run, each driven phase by
// phase through a Control and reporting its measurements as report lines (bench_stats.h).
#pragma once

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <functional>
#include <string>

namespace holdfast::cli::bench {

/// How a side learns that its next phase may start, and where its report lines go. The coordinator
/// of a multi-process run implements it over pipes; the standalone `--server-only` and
/// `--client-only` modes implement it locally.
class Control {
 public:
  virtual ~Control() = default;
  /// Waits for `command` ("open", "release", "measure", "go", "stop", "exit"). A local control
  /// waits for `local_condition` (or a stop signal) instead. False: the run is over (stop signal,
  /// coordinator gone, or its time limit).
  virtual bool wait_for(const char* command, const std::function<bool()>& local_condition) = 0;
  /// Sends one report line (ending in '\n').
  virtual void send(const std::string& line) = 0;
};

/// What a server side serves.
struct ServerPlan {
  std::size_t threads = 1;       ///< loop threads
  std::uint16_t port = 0;        ///< 0: the kernel picks
  bool reuse_port = false;       ///< SO_REUSEPORT: several server processes share the port
  std::string cert_pem;          ///< the certificate every server process of the run shares
  std::string key_pem;           ///< its key
  std::size_t body_size = 13;    ///< response body bytes
  std::size_t expected = 0;      ///< connections expected (reserves the gate up front)
  std::uint64_t release_at = 0;  ///< standalone: answer the held requests once this many came
  bool h2 = false;               ///< offer HTTP/2 as well (ALPN h2, http/1.1)
};

/// Runs a server side: sends "listening port=P", takes its baseline, sends "ready"; holds every
/// "/open" answer until "release"; on "measure" sends "idle ..." (its memory and CPU since the
/// baseline); on "stop" sends "done ..." (requests served since "measure" and their CPU). Returns
/// the process exit code.
int run_server_side(const ServerPlan& plan, Control& control);

/// What a client side does.
struct ClientPlan {
  std::string base_url;         ///< "https://host:port", no trailing slash
  std::string ca_file;          ///< CA PEM file ("" = the system store)
  std::string bind_address;     ///< local address of every connection ("" = any)
  std::size_t threads = 1;      ///< loop threads
  std::size_t connections = 0;  ///< idle connections to open, one "/open" request each
  std::size_t busy = 1;  ///< connections sending back-to-back requests in the keep-alive phase
  double duration = 10;  ///< keep-alive phase seconds
  std::uint64_t max_requests =
      0;                        ///< keep-alive phase stops after this many requests (0: no limit)
  std::size_t open_window = 0;  ///< handshakes in flight while opening (0: every request at once)
  bool resumption = false;      ///< resume TLS sessions
  std::string open_path = "/open";  ///< path of the opening requests
  std::string request_path = "/";   ///< path of the keep-alive requests
  double hold = 0;  ///< seconds to hold the idle connections before the keep-alive phase
  std::chrono::milliseconds open_budget{60'000};  ///< the longest the opening may take
  /// The keep-alive phase speaks HTTP/2 (ALPN h2 only) on `busy` connections of its own, with
  /// `streams` requests in flight on each; the idle connections stay HTTP/1.1.
  bool h2 = false;
  std::size_t streams = 1;  ///< h2: requests in flight per busy connection
};

/// Runs a client side: warm-up request, baseline, "ready"; on "open" opens plan.connections
/// connections with one "/open" request each ("progress ..." lines meanwhile, "written ..." once
/// every request went out), waits for the answers, sends "idle ..." (and "holding seconds=S" before
/// holding them plan.hold seconds); on "go" runs the keep-alive
/// phase (h2: first one request per stream, uncounted, to open the busy connections) and sends
/// "done ..."; returns after "exit". Returns the process exit code.
int run_client_side(const ClientPlan& plan, Control& control);

}  // namespace holdfast::cli::bench
