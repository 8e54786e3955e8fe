// `holdfast serve --workers N`: pre-forked workers share one port, each answers connections, and
// killing one of them loses no other worker's keep-alive connection (issue 5, test 4).
#include <signal.h>
#include <sys/types.h>

#include <chrono>
#include <cstdlib>
#include <map>
#include <memory>
#include <optional>
#include <set>
#include <string>
#include <thread>
#include <vector>

#include <gtest/gtest.h>

#include "holdfast/client.h"
#include "holdfast/error.h"
#include "interop_support.h"

namespace holdfast::interop {
namespace {

constexpr std::size_t kWorkers = 3;
// Connections opened one by one until every worker answered one: SO_REUSEPORT hashes each
// connection to a worker, so 3 workers all get one within a few tries; the bound keeps a broken
// spread from looping forever (the chance of 60 misses of one worker in 3 is (2/3)^60, ~1e-11).
constexpr std::size_t kMaxConnections = 60;

// The worker pid in a `Server: holdfast (worker I; pid P)` header, or 0.
pid_t worker_pid(const Response& response) {
  const auto server = response.headers.get("Server");
  if (!server) {
    return 0;
  }
  const auto at = server->find("pid ");
  return at == std::string_view::npos ? 0 : std::atoi(std::string(server->substr(at + 4)).c_str());
}

// The parent pid of `pid` from /proc, or 0.
pid_t parent_of(pid_t pid) {
  const std::string stat = read_file("/proc/" + std::to_string(pid) + "/stat");
  const auto close = stat.rfind(')');
  if (close == std::string::npos) {
    return 0;
  }
  // "pid (comm) state ppid ...": the ppid follows the state letter.
  return std::atoi(stat.c_str() + close + 4);
}

// One client holding exactly one keep-alive connection, and the worker that answered it.
struct PinnedConnection {
  std::unique_ptr<Client> client;
  pid_t worker = 0;
};

class ServeWorkers : public testing::Test {
 protected:
  void SetUp() override {
    ASSERT_FALSE(cli_path().empty()) << "the holdfast CLI was not built (HOLDFAST_CLI_PATH empty)";
    serve_ = start_serve({"--workers", std::to_string(kWorkers), "--write-cert", cert()}, log());
    ASSERT_FALSE(serve_.url.empty()) << "holdfast serve did not print its address; stderr:\n"
                                     << read_file(log());
  }

  [[nodiscard]] std::string cert() const { return dir_.file("cert.pem"); }
  [[nodiscard]] std::string log() const { return dir_.file("serve.log"); }

  // A new connection (its own client, pool of one) and the worker that answered its first request.
  PinnedConnection connect() const {
    ClientOptions options;
    options.tls.ca_file = cert();
    options.pool.max_per_origin = 1;
    options.timeouts.deadline = std::chrono::seconds(10);
    PinnedConnection c{std::make_unique<Client>(options), 0};
    const Result<Response> r = c.client->get(serve_.url + "/");
    EXPECT_TRUE(r) << describe(r.error());
    if (r) {
      EXPECT_EQ(r->status, 200);
      c.worker = worker_pid(*r);
    }
    return c;
  }

  // Opens connections until every worker answered at least one (bounded by kMaxConnections).
  std::vector<PinnedConnection> connect_to_every_worker() const {
    std::vector<PinnedConnection> out;
    std::set<pid_t> seen;
    while (out.size() < kMaxConnections && (seen.size() < kWorkers || out.size() < 2 * kWorkers)) {
      out.push_back(connect());
      seen.insert(out.back().worker);
    }
    return out;
  }

  // Waits (up to 10 s) for `text` in serve's stderr.
  bool log_shows(const std::string& text) const {
    const auto deadline = SteadyClock::now() + std::chrono::seconds(10);
    while (SteadyClock::now() < deadline) {
      if (read_file(log()).find(text) != std::string::npos) {
        return true;
      }
      std::this_thread::sleep_for(std::chrono::milliseconds(20));
    }
    return false;
  }

  TempDir dir_;
  ServeProcess serve_;
};

TEST_F(ServeWorkers, EveryWorkerIsAChildServingTheOnePort) {
  const std::vector<PinnedConnection> connections = connect_to_every_worker();
  std::set<pid_t> workers;
  for (const PinnedConnection& c : connections) {
    ASSERT_GT(c.worker, 0) << "no worker pid in the Server header";
    workers.insert(c.worker);
  }
  EXPECT_EQ(workers.size(), kWorkers);
  for (const pid_t pid : workers) {
    EXPECT_NE(pid, serve_.process->pid());
    EXPECT_EQ(parent_of(pid), serve_.process->pid()) << "worker " << pid;
  }
}

TEST_F(ServeWorkers, KillingOneWorkerLosesNoOtherWorkersConnections) {
  std::vector<PinnedConnection> connections = connect_to_every_worker();
  ASSERT_FALSE(connections.empty());
  const pid_t victim = connections.front().worker;
  ASSERT_GT(victim, 0);
  ASSERT_EQ(::kill(victim, SIGKILL), 0);
  EXPECT_TRUE(log_shows("was killed by signal 9")) << read_file(log());

  int survivors = 0;
  for (PinnedConnection& c : connections) {
    const Result<Response> r = c.client->get(serve_.url + "/echo");
    ASSERT_TRUE(r) << "connection to worker " << c.worker << ": " << describe(r.error());
    EXPECT_EQ(r->status, 200);
    if (c.worker == victim) {
      EXPECT_NE(worker_pid(*r), victim);  // retried on a new connection to a live worker
      continue;
    }
    ++survivors;
    // The same keep-alive connection, to the same worker, with no retry: nothing was lost.
    EXPECT_TRUE(r->timings.reused_connection) << "worker " << c.worker;
    EXPECT_EQ(worker_pid(*r), c.worker);
    EXPECT_EQ(c.client->stats().connections_opened, 1u);
    EXPECT_EQ(c.client->stats().retries, 0u);
  }
  EXPECT_GT(survivors, 0);
  EXPECT_TRUE(log_shows("restarted as pid")) << read_file(log());
  for (std::size_t i = 0; i < 2 * kWorkers; ++i) {
    EXPECT_GT(connect().worker, 0);  // new connections: served, the replacement included
  }
  const std::optional<int> status = serve_.process->signal_and_wait(SIGTERM, milliseconds(20'000));
  ASSERT_TRUE(status.has_value()) << "serve did not stop after SIGTERM";
  EXPECT_TRUE(WIFEXITED(*status) && WEXITSTATUS(*status) == 0) << read_file(log());
  for (const PinnedConnection& c : connections) {
    EXPECT_NE(::kill(c.worker, 0), 0) << "worker " << c.worker << " outlived serve";
  }
}

TEST_F(ServeWorkers, SigtermStopsEveryWorkerAndExitsZero) {
  const std::vector<PinnedConnection> connections = connect_to_every_worker();
  const std::optional<int> status = serve_.process->signal_and_wait(SIGTERM, milliseconds(20'000));
  ASSERT_TRUE(status.has_value()) << "serve did not stop after SIGTERM";
  EXPECT_TRUE(WIFEXITED(*status) && WEXITSTATUS(*status) == 0) << read_file(log());
  EXPECT_NE(read_file(log()).find("SIGTERM received, stopping 3 workers"), std::string::npos);
  for (const PinnedConnection& c : connections) {
    EXPECT_NE(::kill(c.worker, 0), 0) << "worker " << c.worker << " outlived serve";
  }
}

TEST(ServeWorkersStart, WorkerThatCannotLoadTheCertificateFailsTheStart) {
  ASSERT_FALSE(cli_path().empty()) << "the holdfast CLI was not built (HOLDFAST_CLI_PATH empty)";
  TempDir dir;
  ASSERT_TRUE(write_file(dir.file("cert.pem"), "not a certificate\n"));
  ASSERT_TRUE(write_file(dir.file("key.pem"), "not a key\n"));
  // The certificate is loaded by each worker after fork(): the failure comes from a worker.
  const RunResult r = run({cli_path(), "serve", "--port", "0", "--workers", "2", "--cert",
                           dir.file("cert.pem"), "--key", dir.file("key.pem")},
                          milliseconds(20'000));
  EXPECT_EQ(r.exit_code, 58) << r.err;  // ExitCode::local_certificate, as without --workers
  EXPECT_EQ(r.out.find("listening on"), std::string::npos) << r.out;
  EXPECT_NE(r.err.find("before it was ready"), std::string::npos) << r.err;
}

}  // namespace
}  // namespace holdfast::interop
