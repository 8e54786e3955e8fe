// `holdfast probe URL --idle-timeout`: finds how long a connection may stay idle on the path to a
// server before the server or a middlebox ends it, and how it ends (FIN, reset, silent drop).
#pragma once

#include <cstddef>
#include <string>

namespace CLI {
class App;
}

namespace holdfast::cli {

/// Everything `probe` was given on the command line.
struct ProbeFlags {
  std::string url;              ///< the URL whose path is requested on every probe connection
  bool idle_timeout = false;    ///< --idle-timeout: the one measurement there is so far
  double max = 900;             ///< --max: longest idle time tried, seconds
  double response_timeout = 0;  ///< --response-timeout: no answer this long = silent drop; 0: auto
  std::size_t parallel = 8;     ///< --parallel: connections per narrowing round
  std::string method = "HEAD";  ///< --method: the request sent before and after the idle time
  bool json = false;            ///< --json: one JSON object on stdout instead of the text report
  bool no_progress = false;     ///< --no-progress: no live progress line even on a terminal
  bool insecure = false;        ///< -k
  std::string cacert;           ///< --cacert
};

/// Adds the `probe` subcommand to `app`. The flags live in static storage; when the subcommand is
/// selected, its callback runs the probe and exits the process with run_probe()'s exit code.
void add_probe_command(CLI::App& app);

/// Measures the idle timeout of the path to `flags.url` (docs/cli.md, "probe"): connections with
/// TCP keep-alive off are held idle for different times in parallel, then used; round by round the
/// interval between the longest idle time that survived and the shortest that failed narrows until
/// it is within 10 %. Prints the report on stdout, a progress line on stderr when it is a terminal.
/// Returns 0 when the measurement completed (a timeout was found, or none up to --max), 2 for
/// invalid flags, or the exit code of the error (exit_codes.h) when the server could not be
/// reached at all.
int run_probe(const ProbeFlags& flags);

}  // namespace holdfast::cli
