// Helpers for the `holdfast bench` tests: running the CLI, reading its flat JSON, and a standalone
// `holdfast bench --server-only` child.
#pragma once

#include <cstdlib>
#include <optional>
#include <string>
#include <vector>

#include "interop_support.h"

namespace holdfast::interop {

/// "\"key\":", built with += (g++ 12 warns falsely about "x" + std::string temporaries).
inline std::string json_key(const std::string& key) {
  std::string needle = "\"";
  needle += key;
  needle += "\":";
  return needle;
}

/// The number after "\"key\":" in a flat JSON object, or -1 when the key is missing.
inline double json_number(const std::string& json, const std::string& key) {
  const std::string needle = json_key(key);
  const std::size_t at = json.find(needle);
  if (at == std::string::npos) {
    return -1;
  }
  return std::strtod(json.c_str() + at + needle.size(), nullptr);
}

/// Runs `holdfast bench ARGS...` with a 60 s limit.
inline RunResult bench(const std::vector<std::string>& args) {
  std::vector<std::string> argv{cli_path(), "bench"};
  argv.insert(argv.end(), args.begin(), args.end());
  return run(argv, milliseconds(60'000));
}

/// A running `holdfast bench --server-only --json` waiting for `connections` connections.
struct BenchServer {
  ChildProcess process;
  std::string url;   ///< "https://127.0.0.1:PORT"
  std::string cert;  ///< its certificate, for --cacert

  /// Starts it in `dir` (stderr to dir/server.err) and reads its "listening on URL" line.
  static std::optional<BenchServer> start(const TempDir& dir, int connections) {
    const std::string cert = dir.file("cert.pem");
    std::optional<ChildProcess> p =
        ChildProcess::start({cli_path(), "bench", "--server-only", "--connections",
                             std::to_string(connections), "--json", "--write-cert", cert},
                            dir.file("server.err"));
    if (!p) {
      return std::nullopt;
    }
    const std::optional<std::string> listening = p->read_line(milliseconds(10'000));
    if (!listening || !listening->starts_with("listening on https://")) {
      return std::nullopt;
    }
    return BenchServer{std::move(*p), listening->substr(std::string("listening on ").size()), cert};
  }
};

}  // namespace holdfast::interop
