// `holdfast bench` end to end: the multi-process run's JSON fields, zero errors, the spread over
// several processes and source addresses, --requests, and the standalone split modes.
#include <csignal>
#include <cstdlib>
#include <optional>
#include <string>

#include <gtest/gtest.h>

#include "bench_support.h"
#include "interop_support.h"

namespace holdfast::interop {
namespace {

TEST(BenchCli, ReportsEveryFieldOfBothSidesWithoutErrors) {
  ASSERT_FALSE(cli_path().empty()) << "the holdfast CLI was not built";
  const RunResult r = bench({"--connections", "200", "--duration", "1", "--busy", "8", "--json"});
  ASSERT_EQ(r.exit_code, 0) << r.err << r.out;
  for (const char* key : {"processes",
                          "connections",
                          "server_connections_open",
                          "handshakes_per_s",
                          "requests",
                          "requests_per_s",
                          "latency_us_p50",
                          "latency_us_p90",
                          "latency_us_p99",
                          "latency_us_p999",
                          "kernel_slab_bytes_per_connection",
                          "kernel_tcp_mem_bytes_per_connection",
                          "errors",
                          "server_rss_bytes_per_connection",
                          "server_rss_trimmed_bytes_per_connection",
                          "server_heap_bytes_per_connection",
                          "server_cpu_us_per_handshake",
                          "server_cpu_us_per_request",
                          "client_rss_bytes_per_connection",
                          "client_rss_trimmed_bytes_per_connection",
                          "client_heap_bytes_per_connection",
                          "client_cpu_us_per_handshake",
                          "client_cpu_us_per_request"}) {
    EXPECT_NE(r.out.find(json_key(key)), std::string::npos) << key << " missing in " << r.out;
  }
  EXPECT_EQ(json_number(r.out, "processes"), 1) << r.out;
  EXPECT_EQ(json_number(r.out, "connections"), 200) << r.out;
  EXPECT_EQ(json_number(r.out, "server_connections_open"), 200) << r.out;
  EXPECT_EQ(json_number(r.out, "errors"), 0) << r.out;
  EXPECT_GT(json_number(r.out, "requests"), 0) << r.out;
  EXPECT_GT(json_number(r.out, "server_heap_bytes_per_connection"), 0) << r.out;
  EXPECT_GT(json_number(r.out, "client_heap_bytes_per_connection"), 0) << r.out;
  EXPECT_GT(json_number(r.out, "server_cpu_us_per_handshake"), 0) << r.out;
  EXPECT_LE(json_number(r.out, "latency_us_p50"), json_number(r.out, "latency_us_p999")) << r.out;
  EXPECT_TRUE(r.err.empty()) << "stderr is not a terminal, so no progress line: " << r.err;
}

// Two server processes share the port and two client processes each bind their own 127.0.0.x;
// --requests ends the keep-alive phase after exactly that many requests.
TEST(BenchCli, SpreadsConnectionsOverProcessesAndStopsAfterRequests) {
  ASSERT_FALSE(cli_path().empty()) << "the holdfast CLI was not built";
  const RunResult r = bench({"--processes", "2", "--connections", "300", "--busy", "4",
                             "--requests", "200", "--duration", "30", "--json"});
  ASSERT_EQ(r.exit_code, 0) << r.err << r.out;
  EXPECT_EQ(json_number(r.out, "processes"), 2) << r.out;
  EXPECT_EQ(json_number(r.out, "connections"), 300) << r.out;
  EXPECT_EQ(json_number(r.out, "server_connections_open"), 300) << r.out;
  EXPECT_EQ(json_number(r.out, "requests"), 200) << r.out;
  EXPECT_LT(json_number(r.out, "duration_s"), 30) << r.out;
  EXPECT_EQ(json_number(r.out, "errors"), 0) << r.out;
}

// --server-only and --client-only split the figures between two processes: the server prints its
// idle memory once the client's connections are all open, and the client reports its own.
TEST(BenchCli, ServerOnlyAndClientOnlyReportEachSide) {
  ASSERT_FALSE(cli_path().empty()) << "the holdfast CLI was not built";
  TempDir dir;
  const std::string cert = dir.file("cert.pem");
  std::optional<BenchServer> server = BenchServer::start(dir, 200);
  ASSERT_TRUE(server.has_value()) << read_file(dir.file("server.err"));
  const RunResult client =
      bench({"--client-only", "--target", server->url, "--cacert", server->cert, "--connections",
             "200", "--duration", "1", "--busy", "4", "--json"});
  ASSERT_EQ(client.exit_code, 0) << client.err << client.out;
  EXPECT_NE(client.out.find("\"mode\":\"client-only\""), std::string::npos) << client.out;
  EXPECT_EQ(json_number(client.out, "connections"), 200) << client.out;
  EXPECT_EQ(json_number(client.out, "errors"), 0) << client.out;
  EXPECT_GT(json_number(client.out, "requests"), 0) << client.out;
  EXPECT_GT(json_number(client.out, "client_heap_bytes_per_connection"), 0) << client.out;
  const std::optional<std::string> idle = server->process.read_line(milliseconds(10'000));
  ASSERT_TRUE(idle.has_value()) << read_file(dir.file("server.err"));
  EXPECT_EQ(json_number(*idle, "connections"), 200) << *idle;
  EXPECT_GT(json_number(*idle, "heap_bytes_per_connection"), 0) << *idle;
  const std::optional<int> status = server->process.signal_and_wait(SIGTERM, milliseconds(5'000));
  ASSERT_TRUE(status.has_value());
  EXPECT_TRUE(WIFEXITED(*status) && WEXITSTATUS(*status) == 0) << *status;
  const std::optional<std::string> final_line = server->process.read_line(milliseconds(1'000));
  ASSERT_TRUE(final_line.has_value());
  EXPECT_GT(json_number(*final_line, "requests"), 0) << *final_line;
}

// --h2: the keep-alive phase multiplexes --streams requests on each of --busy HTTP/2 connections.
TEST(BenchCli, H2PhaseMultiplexesStreamsOnTheBusyConnections) {
  ASSERT_FALSE(cli_path().empty()) << "the holdfast CLI was not built";
  const RunResult r = bench({"--connections", "20", "--duration", "1", "--h2", "--busy", "2",
                             "--streams", "5", "--json"});
  ASSERT_EQ(r.exit_code, 0) << r.err << r.out;
  EXPECT_NE(r.out.find("\"protocol\":\"h2\""), std::string::npos) << r.out;
  EXPECT_EQ(json_number(r.out, "streams"), 5) << r.out;
  EXPECT_EQ(json_number(r.out, "busy_connections_opened"), 2) << r.out;
  EXPECT_GT(json_number(r.out, "requests"), 0) << r.out;
  EXPECT_EQ(json_number(r.out, "requests_sent"), json_number(r.out, "requests")) << r.out;
  EXPECT_EQ(json_number(r.out, "errors"), 0) << r.out;
}

// A target that does not speak h2 is an error, not a silent HTTP/1.1 run.
TEST(BenchCli, H2AgainstAnHttp1OnlyTargetFails) {
  ASSERT_FALSE(cli_path().empty()) << "the holdfast CLI was not built";
  TempDir dir;
  std::optional<BenchServer> server = BenchServer::start(dir, 2);
  ASSERT_TRUE(server.has_value()) << read_file(dir.file("server.err"));
  const RunResult client =
      bench({"--client-only", "--target", server->url, "--cacert", server->cert, "--connections",
             "2", "--duration", "1", "--h2", "--json"});
  EXPECT_EQ(client.exit_code, 1) << client.err << client.out;
  EXPECT_NE(client.err.find("only h2 was offered"), std::string::npos) << client.err;
  (void)server->process.signal_and_wait(SIGTERM, milliseconds(5'000));
}

TEST(BenchCli, RefusesMoreConnectionsThanItsProcessesCanHold) {
  ASSERT_FALSE(cli_path().empty()) << "the holdfast CLI was not built";
  const RunResult multi = bench({"--processes", "1", "--connections", "100000"});
  EXPECT_EQ(multi.exit_code, 2) << multi.err;
  EXPECT_NE(multi.err.find("--processes 1 cannot hold"), std::string::npos) << multi.err;
  const RunResult split = bench({"--server-only", "--connections", "100000"});
  EXPECT_EQ(split.exit_code, 2) << split.err;
  EXPECT_NE(split.err.find("open-file limit"), std::string::npos) << split.err;
  EXPECT_LT(multi.elapsed + split.elapsed, milliseconds(5'000));
}

}  // namespace
}  // namespace holdfast::interop
