// Silent-drop fault tests (issue 4): a middlebox that forgets idle flows, as a cloud load balancer
// does.
//
// The defaults (keep-alive after 30 s) sit well below common middlebox idle timeouts (240-600 s);
// to keep the suite fast these tests scale both down: the middlebox forgets a flow after 4 s and
// the client probes after 1 s (docs/keepalive.md).
#include <string>

#include <gtest/gtest.h>

#include "fault/netns_fixture.h"
#include "holdfast/client.h"
#include "holdfast/error.h"

namespace holdfast::fault {
namespace {

constexpr int kMiddleboxTimeout = 4;  // seconds the middlebox keeps an idle flow

std::string url(const std::string& path) {
  return "http://" + std::string(kServerAddress) + ":" + std::to_string(kServerPort) + path;
}

class SilentDropTest : public ::testing::Test {
 protected:
  // Builds the path (the middlebox forgets a flow idle for `middlebox_timeout` s) and starts
  // `holdfast serve` in the server namespace; false (and a loud skip) when namespaces cannot be
  // made here.
  // `server_flags` go to `holdfast serve` (e.g. keep-alive for the vanished-client test: the
  // other tests keep the server's default 30 s so its probes do not refresh the middlebox).
  bool start(int middlebox_timeout = kMiddleboxTimeout,
             const std::vector<std::string>& server_flags = {}) {
    const std::string cli = HOLDFAST_CLI_PATH;
    path_.emplace(middlebox_timeout);
    std::string why = cli.empty() ? "the holdfast CLI was not built" : path_->build();
    if (!why.empty()) {
      std::fprintf(stderr, "\n*** SKIP: fault tests need network namespaces: %s ***\n\n",
                   why.c_str());
      return false;
    }
    std::vector<std::string> argv{
        cli, "serve", "--plain", "--bind", kServerAddress, "--port", std::to_string(kServerPort)};
    argv.insert(argv.end(), server_flags.begin(), server_flags.end());
    server_.emplace(path_->server(), argv);
    const bool up = wait_until([&] { return server_listening(path_->server()); }, 5s);
    EXPECT_TRUE(up) << "holdfast serve did not start: " << server_->output();
    return up;
  }

  std::vector<std::string> get(std::vector<std::string> flags, const std::string& path) {
    flags.insert(flags.begin(), {HOLDFAST_CLI_PATH, "get"});
    flags.push_back(url(path));
    return flags;
  }

  std::optional<NetnsPath> path_;
  std::optional<Child> server_;
};

double seconds_since(Clock::time_point start) {
  return std::chrono::duration<double>(Clock::now() - start).count();
}

// The precondition of every other test: without keep-alive, an idle flow really is dropped.
TEST_F(SilentDropTest, MiddleboxDropsAnIdleFlowSilently) {
  if (!start()) {
    GTEST_SKIP() << "network namespaces unavailable (see the SKIP line above)";
  }
  Child short_wait(path_->client(), get({"--no-keepalive", "--max-time", "5"}, "/delay/1"));
  ASSERT_EQ(short_wait.wait_for(10s), 0) << short_wait.output();

  const auto start_time = Clock::now();
  Child long_wait(path_->client(), get({"--no-keepalive", "--max-time", "7"}, "/delay/6"));
  EXPECT_EQ(long_wait.wait_for(12s), 28) << long_wait.output();  // 28: deadline, as curl
  EXPECT_GE(seconds_since(start_time), 6.5);
}

// Issue test 2: keep-alive disabled, a bound set: the request fails within the bound, clearly.
TEST_F(SilentDropTest, WithoutKeepaliveTheRequestFailsWithinItsBoundNotHangs) {
  if (!start()) {
    GTEST_SKIP() << "network namespaces unavailable (see the SKIP line above)";
  }
  const auto start_time = Clock::now();
  Child client(path_->client(), get({"--no-keepalive", "--max-time", "8"},
                                    "/delay/" + std::to_string(3 * kMiddleboxTimeout)));
  const auto code = client.wait_for(15s);
  const double took = seconds_since(start_time);
  ASSERT_TRUE(code.has_value()) << "holdfast get hung past its --max-time 8";
  EXPECT_EQ(*code, 28) << client.output();
  EXPECT_LT(took, 10.0);
  EXPECT_NE(client.output().find("deadline exceeded"), std::string::npos) << client.output();
}

// Issue test 1 (CLI): `holdfast get` with keep-alive on gets a response that takes 3 times the
// middlebox timeout (keep-alive scaled down like the middlebox: 1 s idle, 1 s interval).
TEST_F(SilentDropTest, CliKeepaliveCarriesASlowResponseThroughTheMiddlebox) {
  if (!start()) {
    GTEST_SKIP() << "network namespaces unavailable (see the SKIP line above)";
  }
  Child client(path_->client(),
               get({"--keepalive-idle", "1", "--keepalive-interval", "1", "--max-time", "60"},
                   "/delay/" + std::to_string(3 * kMiddleboxTimeout)));
  EXPECT_EQ(client.wait_for(40s), 0) << client.output();
  EXPECT_NE(client.output().find("delayed 12 s"), std::string::npos) << client.output();
}

// Issue test 1 (Client API): keep-alive probes keep the middlebox's state alive while a slow server
// works for 3 times the middlebox timeout, and the response arrives.
TEST_F(SilentDropTest, KeepaliveCarriesASlowResponseThroughTheMiddlebox) {
  if (!start()) {
    GTEST_SKIP() << "network namespaces unavailable (see the SKIP line above)";
  }
  const auto result = run_in_netns(
      path_->client(),
      [](std::string& text) {
        ClientOptions options;
        options.socket.keepalive_idle = std::chrono::seconds(1);
        options.socket.keepalive_interval = std::chrono::seconds(1);
        options.timeouts.deadline = std::chrono::seconds(30);
        Client client(options);
        auto response = client.get(url("/delay/" + std::to_string(3 * kMiddleboxTimeout)));
        if (!response) {
          text = describe(response.error());
          return 1;
        }
        text = std::to_string(response->status) + " " + response->body;
        return response->status == 200 ? 0 : 2;
      },
      40s);
  EXPECT_EQ(result.code, 0) << result.text;
  EXPECT_NE(result.text.find("delayed 12 s"), std::string::npos) << result.text;
}

// Issue test 3: a pooled connection idle past the middlebox timeout is dead; the next GET goes out
// on a fresh connection and the caller sees no error. Keep-alive is off so the flow really expires;
// TCP_USER_TIMEOUT (2 s) turns the silently dropped request into an error before any response byte,
// and the retry rule resends the GET.
TEST_F(SilentDropTest, PooledConnectionDroppedByTheMiddleboxIsReplacedTransparently) {
  if (!start()) {
    GTEST_SKIP() << "network namespaces unavailable (see the SKIP line above)";
  }
  const auto result = run_in_netns(
      path_->client(),
      [](std::string& text) {
        ClientOptions options;
        options.socket.keepalive = false;
        options.socket.user_timeout = std::chrono::seconds(2);
        options.timeouts.deadline = std::chrono::seconds(15);
        Client client(options);
        auto first = client.get(url("/"));
        if (!first) {
          text = "first request: " + describe(first.error());
          return 1;
        }
        std::this_thread::sleep_for(std::chrono::seconds(kMiddleboxTimeout + 2));
        auto second = client.get(url("/"));
        const auto stats = client.stats();
        text = "opened=" + std::to_string(stats.connections_opened) +
               " reuses=" + std::to_string(stats.connection_reuses) +
               " retries=" + std::to_string(stats.retries);
        if (!second) {
          text += " second request: " + describe(second.error());
          return 2;
        }
        return stats.connections_opened == 2 && stats.retries == 1 ? 0 : 3;
      },
      30s);
  EXPECT_EQ(result.code, 0) << result.text;
}

// Issue test 4: the server frees a connection whose client vanished without a FIN or RST, by its
// keep-alive (scaled down: 2 s idle + 2 x 1 s probes), well within 30 s.
TEST_F(SilentDropTest, ServerFreesAConnectionWhoseClientVanished) {
  if (!start(kMiddleboxTimeout,
             {"--keepalive-idle", "2", "--keepalive-interval", "1", "--keepalive-count", "2"})) {
    GTEST_SKIP() << "network namespaces unavailable (see the SKIP line above)";
  }
  const pid_t server_pid = server_->pid();
  const int baseline = open_sockets(server_pid);
  Child client(path_->client(), get({"--max-time", "600"}, "/delay/600"));
  ASSERT_TRUE(wait_until([&] { return open_sockets(server_pid) == baseline + 1; }, 5s))
      << "the server never accepted the client's connection";

  ASSERT_TRUE(path_->unplug_client());
  client.kill();  // its FIN goes nowhere: the veth is gone
  const auto unplugged = Clock::now();
  const bool freed = wait_until([&] { return open_sockets(server_pid) == baseline; }, 30s);
  EXPECT_TRUE(freed) << "the server still holds the vanished client's connection after 30 s";
  EXPECT_GE(seconds_since(unplugged), 1.5) << "freed before keep-alive could have fired: by what?";
}

}  // namespace
}  // namespace holdfast::fault
