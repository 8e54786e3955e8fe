// Issue 4, test 5: `holdfast probe --idle-timeout` finds the idle timeout of a middlebox that
// silently forgets idle flows (4 s, 9 s, 20 s), each within 10 %, in about 3 times that long.
//
// The three paths are measured at the same time, each in namespaces of its own, so that the file
// takes as long as the slowest measurement (~1 min) rather than the sum.
#include <cmath>
#include <cstdlib>
#include <memory>
#include <string>
#include <vector>

#include <gtest/gtest.h>

#include "fault/netns_fixture.h"
#include "holdfast/server.h"
#include "support/tls_fixture.h"

namespace holdfast::fault {
namespace {

// One middlebox timeout under test: its path, its server and the probe run against it.
struct Measurement {
  explicit Measurement(int seconds) : timeout(seconds), path(seconds) {}
  int timeout;
  NetnsPath path;
  std::optional<Child> server;
  std::optional<Child> probe;
};

// The number after "\"name\":" in the probe's JSON line, or NaN.
double json_number(const std::string& json, const std::string& name) {
  const std::size_t at = json.find("\"" + name + "\":");
  if (at == std::string::npos) {
    return std::nan("");
  }
  const std::string rest = json.substr(at + name.size() + 3);
  char* end = nullptr;
  const double value = std::strtod(rest.c_str(), &end);
  return end == rest.c_str() ? std::nan("") : value;
}

// Builds every path and starts a server in each; "" or why namespaces cannot be had here.
std::string start_servers(std::vector<std::unique_ptr<Measurement>>& runs) {
  const std::string cli = HOLDFAST_CLI_PATH;
  if (cli.empty()) {
    return "the holdfast CLI was not built";
  }
  for (auto& run : runs) {
    if (std::string why = run->path.build(); !why.empty()) {
      return why;
    }
    run->server.emplace(run->path.server(), serve_argv());
  }
  return "";
}

// The interval the probe reports must lie around the true timeout, each end within 10 %.
void expect_within_ten_percent(const Measurement& run) {
  const std::string out = run.probe->output();
  const double survived = json_number(out, "survived_s");
  const double failed = json_number(out, "failed_s");
  const double t = run.timeout;
  EXPECT_GE(survived, 0.9 * t) << out;
  EXPECT_LE(survived, 1.1 * t) << out;
  EXPECT_GE(failed, 0.9 * t) << out;
  EXPECT_LE(failed, 1.1 * t) << out;
  EXPECT_LE((failed - survived) / survived, 0.1 + 1e-9) << out;
  EXPECT_NE(out.find("\"end\":\"silent_drop\""), std::string::npos) << out;
  // About 3 times the timeout, plus two response timeouts (2 s each) to recognise silent drops.
  const double took = json_number(out, "elapsed_s");
  EXPECT_LE(took, 3.0 * t + 6.0) << "the probe of a " << run.timeout << " s path took " << took
                                 << " s";
}

TEST(Probe, FindsMiddleboxIdleTimeoutsOf4And9And20SecondsWithinTenPercent) {
  std::vector<std::unique_ptr<Measurement>> runs;
  for (const int timeout : {4, 9, 20}) {
    runs.push_back(std::make_unique<Measurement>(timeout));
  }
  if (const std::string why = start_servers(runs); !why.empty()) {
    std::fprintf(stderr, "\n*** SKIP: fault tests need network namespaces: %s ***\n\n",
                 why.c_str());
    GTEST_SKIP() << "network namespaces unavailable: " << why;
  }
  for (auto& run : runs) {
    ASSERT_TRUE(wait_until([&] { return server_listening(run->path.server()); }, 5s))
        << "holdfast serve did not start: " << run->server->output();
  }
  for (auto& run : runs) {
    run->probe.emplace(run->path.client(),
                       std::vector<std::string>{HOLDFAST_CLI_PATH, "probe", server_url("/"),
                                                "--idle-timeout", "--json"});
  }
  // Bounded: the slowest (20 s) path needs about a minute; a broken probe is killed at 100 s.
  const auto end = Clock::now() + 100s;
  for (auto& run : runs) {
    const auto left = std::chrono::duration_cast<std::chrono::milliseconds>(end - Clock::now());
    const auto code = run->probe->wait_for(std::max(left, std::chrono::milliseconds(1)));
    ASSERT_TRUE(code.has_value()) << "the probe of a " << run->timeout
                                  << " s path still ran after 100 s: " << run->probe->output();
    EXPECT_EQ(*code, 0) << run->probe->output();
  }
  for (auto& run : runs) {
    SCOPED_TRACE("middlebox timeout " + std::to_string(run->timeout) + " s");
    expect_within_ten_percent(*run);
  }
}

// A middlebox that answers a forgotten flow with a reset (AWS NLB): the probe says "reset".
TEST(Probe, ReportsAResetWhenTheMiddleboxAnswersAForgottenFlowWithOne) {
  NetnsPath path(4);
  std::string why = std::string(HOLDFAST_CLI_PATH).empty() ? "no CLI" : path.build();
  if (!why.empty()) {
    std::fprintf(stderr, "\n*** SKIP: fault tests need network namespaces: %s ***\n\n",
                 why.c_str());
    GTEST_SKIP() << "network namespaces unavailable: " << why;
  }
  ASSERT_TRUE(path.reset_expired_flows());
  Child server(path.server(), serve_argv());
  ASSERT_TRUE(wait_until([&] { return server_listening(path.server()); }, 5s)) << server.output();
  Child probe(path.client(), {HOLDFAST_CLI_PATH, "probe", server_url("/"), "--idle-timeout",
                              "--json", "--max", "30"});
  const auto code = probe.wait_for(40s);
  ASSERT_TRUE(code.has_value()) << "the probe still ran after 40 s: " << probe.output();
  EXPECT_EQ(*code, 0) << probe.output();
  EXPECT_NE(probe.output().find("\"end\":\"reset\""), std::string::npos) << probe.output();
  EXPECT_LE(json_number(probe.output(), "failed_s"), 4.4) << probe.output();
  EXPECT_GE(json_number(probe.output(), "survived_s"), 3.6) << probe.output();
}

// A server that closes idle connections after 3 s and says so in Keep-Alive: timeout=3 (loopback,
// no middlebox): the probe finds 3 s, says the server closed them, and reports the hint.
TEST(Probe, ReportsAServerThatClosesIdleConnectionsAndItsKeepAliveHint) {
  ServerOptions options;
  options.timeouts.keepalive_idle = std::chrono::seconds(3);
  auto server = testing::start_server(
      [](const Request&, const ResponseWriter& writer) {
        Response response;
        response.headers.add("Keep-Alive", "timeout=3");
        response.body = "ok\n";
        writer.send(std::move(response));
      },
      /*plain=*/true, options);
  const std::string command = std::string(HOLDFAST_CLI_PATH) + " probe " +
                              testing::base_url(*server, true) +
                              "/ --idle-timeout --json --max 20 --no-progress";
  const std::string out = shell_output("timeout 40 " + command);
  EXPECT_NE(out.find("\"end\":\"closed\""), std::string::npos) << out;
  EXPECT_NE(out.find("\"keep_alive_hint_s\":3.000"), std::string::npos) << out;
  EXPECT_GE(json_number(out, "survived_s"), 2.7) << out;
  EXPECT_LE(json_number(out, "failed_s"), 3.3) << out;
}

}  // namespace
}  // namespace holdfast::fault
