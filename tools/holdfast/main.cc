// holdfast: the command-line tool (get, request, serve, bench, probe) over the public API only.
#include <csignal>

#include <CLI/CLI.hpp>

#include "bench_command.h"
#include "probe_command.h"
#include "request_command.h"
#include "serve_command.h"

namespace {

// Kept equal to project(VERSION) in CMakeLists.txt: the public API has no version header yet.
constexpr const char* kVersion = "holdfast 0.1.0";

}  // namespace

int main(int argc, char** argv) {
  // A closed stdout or socket must be an error value (EPIPE), not a silent death.
  std::signal(SIGPIPE, SIG_IGN);
  CLI::App app{"holdfast: HTTP/1.1 over TLS client and server"};
  app.set_version_flag("--version", kVersion);
  app.require_subcommand(1);
  holdfast::cli::RequestFlags get_flags;
  holdfast::cli::RequestFlags request_flags;
  holdfast::cli::ServeFlags serve_flags;
  holdfast::cli::add_request_commands(app, get_flags, request_flags);
  holdfast::cli::add_serve_command(app, serve_flags);
  holdfast::cli::add_bench_command(app);  // runs and exits from its own callback
  holdfast::cli::add_probe_command(app);  // runs and exits from its own callback
  try {
    app.parse(argc, argv);
  } catch (const CLI::ParseError& e) {
    const int code = app.exit(e);
    // --help and --version exit 0; every real parse error is a usage error (2).
    return code == 0 ? 0 : 2;
  }
  if (app.got_subcommand("get")) {
    return holdfast::cli::run_request(get_flags);
  }
  if (app.got_subcommand("request")) {
    return holdfast::cli::run_request(request_flags);
  }
  return holdfast::cli::run_serve(serve_flags);
}
