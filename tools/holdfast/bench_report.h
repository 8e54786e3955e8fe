// `holdfast bench` report: sums the report lines of every side process and renders the table or
// the JSON object.
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>

#include "bench_stats.h"

namespace holdfast::cli::bench {

/// The sums over every process of one side (server or client).
struct SideFigures {
  bool present = false;           ///< false: this side was not measured (e.g. an outside server)
  double connections = 0;         ///< the divisor: connections held idle
  double rss = 0;                 ///< RSS delta, bytes
  double rss_trimmed = 0;         ///< RSS delta after malloc_trim(0), bytes
  double heap = 0;                ///< mallinfo2 delta, bytes
  double open_cpu_us = 0;         ///< CPU while opening (handshakes + one request each)
  double keepalive_cpu_us = 0;    ///< CPU during the keep-alive phase
  double handshakes = 0;          ///< server: TLS handshakes completed
  double keepalive_requests = 0;  ///< requests served (server) or completed (client)
};

/// Everything the report prints, summed over the processes of a run.
struct Summary {
  std::string mode = "multi-process";  ///< "multi-process" or "client-only"
  std::string target;                  ///< the URL driven
  std::size_t processes = 1;           ///< server processes and client processes (each)
  std::size_t threads = 1;             ///< loop threads per process
  std::size_t busy = 0;                ///< keep-alive connections
  std::size_t streams = 1;             ///< requests in flight per keep-alive connection (h2)
  std::string protocol = "http/1.1";   ///< of the keep-alive phase: "http/1.1" or "h2"
  double busy_opened = 0;              ///< connections the keep-alive client opened for it
  double requests_sent = 0;            ///< keep-alive requests written
  std::size_t body_size = 13;          ///< response body bytes
  std::uint64_t wanted = 0;            ///< --connections
  double open_seconds = 0;             ///< longest opening phase of the client processes
  double open_errors = 0;
  double resumptions = 0;
  double requests = 0;  ///< keep-alive requests completed
  double request_errors = 0;
  double keepalive_seconds = 0;  ///< longest keep-alive phase
  LatencyHistogram latency;
  SideFigures server;
  SideFigures client;
  bool has_kernel = false;  ///< kernel figures measured (by the coordinator)
  double kernel_slab = 0;   ///< system-wide slab delta, bytes
  double kernel_tcp_mem = 0;
  std::string first_error;
  std::string server_spread;  ///< connections each server process held, "a + b + ..."

  /// Adds one client process's "idle" and "done" lines.
  void add_client(const Line& idle, const Line& done);
  /// Adds one server process's "idle" and "done" lines.
  void add_server(const Line& idle, const Line& done);
  /// Every error of the run (opening and keep-alive).
  [[nodiscard]] double errors() const { return open_errors + request_errors; }
};

/// The human-readable report.
std::string render_table(const Summary& s);

/// The report as one flat JSON object on one line.
std::string render_json(const Summary& s);

}  // namespace holdfast::cli::bench
