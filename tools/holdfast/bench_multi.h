// `holdfast bench` coordinator: forks the server and client processes of a run, steps them through
// their phases over pipes and sums their reports.
#pragma once

#include <cstddef>
#include <cstdint>

#include "bench_report.h"

namespace holdfast::cli::bench {

/// A run over separate server and client processes on loopback.
struct MultiPlan {
  std::size_t processes = 1;    ///< server processes (SO_REUSEPORT, one port) and client processes
  std::size_t connections = 0;  ///< idle connections in all
  std::size_t busy = 1;        ///< keep-alive connections in all (spread over the client processes)
  std::size_t threads = 1;     ///< loop threads per process
  std::size_t body_size = 13;  ///< response body bytes
  double duration = 10;        ///< keep-alive phase seconds
  std::uint64_t max_requests = 0;  ///< keep-alive requests in all (0: no limit)
  bool resumption = false;         ///< clients resume TLS sessions
  bool h2 = false;                 ///< keep-alive phase over HTTP/2 (ClientPlan::h2)
  std::size_t streams = 1;         ///< h2: requests in flight per busy connection
};

/// The local address client process `index` binds: 127.0.0.(2 + index), so that each source
/// address has the whole ephemeral port range for its connections.
std::string client_source_address(std::size_t index);

/// Runs the plan: generates one certificate, forks `processes` servers and `processes` clients
/// (must be called before this process starts any thread), steps them through warm-up, opening
/// (the servers hold every answer until all connections are open), idle measurement and the
/// keep-alive phase, and fills `summary` (including the system-wide kernel figures). Shows the
/// progress line on a terminal. Returns 0, or 1 when a process failed or a phase timed out (the
/// summary then holds what was measured).
int run_multi_process(const MultiPlan& plan, Summary& summary);

}  // namespace holdfast::cli::bench
