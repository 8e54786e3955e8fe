// The CI memory ceiling of issue 3: an idle TLS 1.3 connection costs at most 32 KB of user-space
// memory on each side at N = 1,000, measured by `holdfast bench`. It is not a timing test: it
// catches a per-connection CA store load or a kept 16 KB TLS buffer, not a slowdown.
#include <csignal>
#include <filesystem>
#include <optional>
#include <string>

#include <gtest/gtest.h>

#include "bench_support.h"
#include "interop_support.h"

namespace holdfast::interop {
namespace {

constexpr double kCeiling = 32 * 1024;
constexpr int kConnections = 1'000;
// Debian's bundle of the system CAs (package ca-certificates): ~140 certificates, about 200 KB.
constexpr const char* kSystemBundle = "/etc/ssl/certs/ca-certificates.crt";

bool in_ci() {
  const char* ci = std::getenv("CI");
  return ci != nullptr && std::string(ci) == "true";
}

// Heap, RSS and RSS after malloc_trim per connection, each held to the ceiling.
void expect_under_ceiling(const std::string& json, const std::string& prefix) {
  for (const char* figure : {"heap_bytes_per_connection", "rss_trimmed_bytes_per_connection",
                             "rss_bytes_per_connection"}) {
    const double value = json_number(json, prefix + figure);
    EXPECT_GT(value, 0) << prefix << figure << " in " << json;
    EXPECT_LE(value, kCeiling) << prefix << figure << " in " << json;
  }
}

// Default run (one server process, one client process): each side's figures.
TEST(BenchCeiling, EachSideHoldsAnIdleConnectionInAtMost32KB) {
  ASSERT_FALSE(cli_path().empty()) << "the holdfast CLI was not built";
#if defined(__SANITIZE_ADDRESS__) || defined(__SANITIZE_THREAD__)
  GTEST_SKIP() << "sanitizer allocators make mallinfo2 and RSS meaningless";
#endif
  const RunResult r = bench({"--connections", std::to_string(kConnections), "--duration", "0.5",
                             "--busy", "2", "--json"});
  ASSERT_EQ(r.exit_code, 0) << r.err << r.out;
  ASSERT_EQ(json_number(r.out, "connections"), kConnections) << r.out;
  expect_under_ceiling(r.out, "server_");
  expect_under_ceiling(r.out, "client_");
  EXPECT_LT(r.elapsed, milliseconds(20'000)) << r.out;
}

// The client trusts the whole system CA bundle plus the bench certificate: a client that parsed
// its CA file per connection would hold ~200 KB more per connection and break the ceiling.
TEST(BenchCeiling, ClientWithTheSystemCaBundleStaysUnder32KB) {
  ASSERT_FALSE(cli_path().empty()) << "the holdfast CLI was not built";
#if defined(__SANITIZE_ADDRESS__) || defined(__SANITIZE_THREAD__)
  GTEST_SKIP() << "sanitizer allocators make mallinfo2 and RSS meaningless";
#endif
  if (!std::filesystem::exists(kSystemBundle)) {
    ASSERT_FALSE(in_ci()) << kSystemBundle << " is missing: install ca-certificates";
    GTEST_SKIP() << "*** " << kSystemBundle << " missing (ca-certificates): NOT TESTED ***";
  }
  TempDir dir;
  std::optional<BenchServer> server = BenchServer::start(dir, kConnections);
  ASSERT_TRUE(server.has_value()) << read_file(dir.file("server.err"));
  const std::string bundle = dir.file("bundle.pem");
  ASSERT_TRUE(write_file(bundle, read_file(kSystemBundle) + read_file(server->cert)));
  const RunResult client = bench({"--target", server->url, "--cacert", bundle, "--connections",
                                  std::to_string(kConnections), "--open-window", "128",
                                  "--duration", "0.5", "--busy", "2", "--json"});
  ASSERT_EQ(client.exit_code, 0) << client.err << client.out;
  expect_under_ceiling(client.out, "client_");
  const std::optional<std::string> idle = server->process.read_line(milliseconds(10'000));
  ASSERT_TRUE(idle.has_value()) << read_file(dir.file("server.err"));
  expect_under_ceiling(*idle, "");
  EXPECT_LT(client.elapsed, milliseconds(20'000)) << client.out;
}

}  // namespace
}  // namespace holdfast::interop
