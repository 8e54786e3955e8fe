// `holdfast get` and `holdfast request`: one HTTP request with curl-like flags.
#pragma once

#include <optional>
#include <string>
#include <vector>

#include "socket_flags.h"

namespace CLI {
class App;
}

namespace holdfast::cli {

/// Everything `get` / `request` were given on the command line.
struct RequestFlags {
  std::string url;
  std::string method;                      ///< -X; empty: GET, or POST when a body is given
  std::vector<std::string> headers;        ///< -H "Name: value", in order
  std::vector<std::string> data;           ///< -d pieces, joined with '&' like curl
  std::optional<std::string> data_binary;  ///< --data-binary: "@file" or the text itself
  std::string output;                      ///< -o; empty: stdout
  bool insecure = false;                   ///< -k
  std::string cacert;                      ///< --cacert
  double connect_timeout = 0;  ///< seconds for each of DNS, TCP connect, TLS; 0: default
  double max_time = 0;         ///< whole-request deadline in seconds; 0: none
  bool include = false;        ///< -i
  bool verbose = false;        ///< -v
  bool silent = false;         ///< -s
  bool show_error = false;     ///< -S: error messages even with -s
  bool fail = false;           ///< --fail
  SocketFlags socket;          ///< --keepalive-*, --no-keepalive, --user-timeout
};

/// Adds the `get` and `request` subcommands to `app`; they store into `get_flags` /
/// `request_flags`, which must outlive parsing.
void add_request_commands(CLI::App& app, RequestFlags& get_flags, RequestFlags& request_flags);

/// Runs one request as `flags` say; prints the body (and -i/-v output) and returns the exit code.
int run_request(const RequestFlags& flags);

}  // namespace holdfast::cli
