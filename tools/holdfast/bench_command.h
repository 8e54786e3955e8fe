// `holdfast bench`: idle-TLS-connection memory per side, handshakes/s, keep-alive requests/s and
// latency; flags and the choice between the multi-process run and the standalone sides.
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>

namespace CLI {
class App;
}

namespace holdfast::cli {

/// Everything `bench` was given on the command line.
struct BenchFlags {
  std::size_t connections = 10'000;  ///< --connections: idle TLS connections to open and hold
  std::size_t busy = 0;         ///< --busy: connections sending requests (0: 64, or 1 with --h2)
  double duration = 10.0;       ///< --duration: seconds of the keep-alive phase
  std::uint64_t requests = 0;   ///< --requests: stop the keep-alive phase after this many
  std::size_t body_size = 13;   ///< --body-size: response body bytes
  std::size_t threads = 1;      ///< --threads: loop threads of each process
  std::size_t processes = 0;    ///< --processes: server and client processes each (0: automatic)
  bool resumption = false;      ///< --resumption: resume TLS sessions (default: full handshakes)
  bool json = false;            ///< --json: one JSON object on stdout instead of the table
  bool server_only = false;     ///< --server-only: serve, print the port and server memory
  bool client_only = false;     ///< --client-only: drive --target instead of embedded servers
  std::string target;           ///< --target URL: an outside server to drive (implies client-only)
  std::string cacert;           ///< --cacert FILE: CAs for --target (empty: the system store)
  std::string write_cert;       ///< --write-cert FILE: --server-only's certificate PEM
  std::size_t open_window = 0;  ///< --open-window: --client-only handshakes in flight (0: all)
  double hold = 0;  ///< --hold SECONDS: --client-only holds the idle connections so long
  bool h2 = false;  ///< --h2: the keep-alive phase speaks HTTP/2 (the idle phase stays HTTP/1.1)
  std::size_t streams = 10;  ///< --streams: --h2 requests in flight per busy connection
};

/// Adds the `bench` subcommand to `app`. The flags live in static storage; when the subcommand is
/// selected, its callback runs the benchmark and exits the process with run_bench()'s exit code.
void add_bench_command(CLI::App& app);

/// Runs the benchmark and prints the report on stdout. By default: `--processes` server processes
/// sharing one port and as many client processes (each from its own 127.0.0.x address), forked
/// from this one, with the figures of each side summed; the number of processes is chosen from
/// the open-file limit when not given. With --server-only only a server (its memory once
/// --connections are open, then serving until SIGINT/SIGTERM); with --client-only / --target only
/// a client against that URL. Returns 0, 2 for invalid flags, or 1 when the run had errors.
int run_bench(const BenchFlags& flags);

}  // namespace holdfast::cli
