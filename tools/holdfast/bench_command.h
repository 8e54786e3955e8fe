// `holdfast bench`: idle-TLS-connection memory, handshakes/s, keep-alive requests/s and latency.
#pragma once

#include <cstddef>
#include <string>

namespace CLI {
class App;
}

namespace holdfast::cli {

/// Everything `bench` was given on the command line.
struct BenchFlags {
  std::size_t connections = 5'000;  ///< --connections: idle TLS connections to open and hold
  std::size_t busy = 64;            ///< --busy: connections sending back-to-back requests
  double duration = 10.0;           ///< --duration: seconds of the keep-alive phase
  std::size_t body_size = 13;       ///< --body-size: response body bytes
  std::size_t threads = 1;          ///< --threads: loop threads of the client and of the server
  bool resumption = false;   ///< --resumption: resume TLS sessions (default: full handshakes)
  bool json = false;         ///< --json: one JSON object on stdout instead of the table
  bool server_only = false;  ///< --server-only: serve, print the port and server memory
  bool client_only = false;  ///< --client-only: drive --target instead of an embedded server
  std::string target;        ///< --target URL: a `holdfast bench --server-only` to drive
  std::string cacert;        ///< --cacert FILE: CAs for --target (empty: the system store)
  std::string write_cert;    ///< --write-cert FILE: --server-only's certificate PEM
};

/// Adds the `bench` subcommand to `app`. The flags live in static storage; when the subcommand is
/// selected, its callback runs the benchmark and exits the process with run_bench()'s exit code.
void add_bench_command(CLI::App& app);

/// Runs the benchmark and prints the report on stdout: in-process (embedded TLS server and client
/// in this process) by default; with --server-only only the server (its memory per connection once
/// --connections are open, then serving until SIGINT/SIGTERM); with --client-only only the client,
/// against --target. Returns 0, 2 for invalid flags, or 1 when the run had errors or failed.
int run_bench(const BenchFlags& flags);

}  // namespace holdfast::cli
