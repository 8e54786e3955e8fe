// `holdfast serve`: a test and demo server with built-in routes, TLS by default.
#pragma once

#include <cstdint>
#include <string>

#include "socket_flags.h"

namespace CLI {
class App;
}

namespace holdfast::cli {

/// Everything `serve` was given on the command line.
struct ServeFlags {
  std::string bind = "127.0.0.1";  ///< numeric address to listen on
  std::uint16_t port = 0;          ///< 0: the kernel picks
  std::string cert;                ///< --cert FILE (with --key)
  std::string key;                 ///< --key FILE (with --cert)
  std::string write_cert;          ///< --write-cert FILE: the generated certificate's PEM
  bool plain = false;              ///< --plain: HTTP without TLS
  std::size_t threads = 1;         ///< --threads (per worker with --workers)
  std::size_t workers = 0;         ///< --workers N: N pre-forked processes; 0: serve in this one
  bool access_log = false;         ///< --access-log: one line per request on stderr
  SocketFlags socket;  ///< --keepalive-*, --no-keepalive, --user-timeout (accepted sockets)
};

/// Adds the `serve` subcommand to `app`; it stores into `flags`, which must outlive parsing.
void add_serve_command(CLI::App& app, ServeFlags& flags);

/// Serves until SIGINT or SIGTERM, then shuts down gracefully. The first line on stdout is
/// "listening on <scheme>://<address>:<port>" (flushed at once). With --workers N the process
/// binds, forks N workers sharing the port and supervises them (prefork.h, docs/fork.md).
/// Returns the exit code.
int run_serve(const ServeFlags& flags);

}  // namespace holdfast::cli
