// Server integration: limits (400/413/414/431/501), timeouts, graceful shutdown, TLS through curl.
#include <arpa/inet.h>
#include <netinet/in.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <cstdio>
#include <future>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <thread>

#include <gtest/gtest.h>

#include "holdfast/certs.h"
#include "holdfast/error.h"
#include "holdfast/http.h"
#include "holdfast/server.h"
#include "support/raw_client.h"

namespace holdfast {
namespace {

using namespace std::chrono_literals;

using testing::echo;
using testing::get;
using testing::RawClient;
using testing::RawResponse;
using testing::start;
using testing::text;

// Sends `request` on a fresh connection; expects `status`, then the server's close.
void expect_rejected(Server& server, const std::string& request, int status) {
  RawClient c(server.port());
  c.send(request);
  auto r = c.read_response();
  ASSERT_TRUE(r) << "no response for a request that should get " << status;
  EXPECT_EQ(r->status, status);
  EXPECT_EQ(r->headers["connection"], "close");
  EXPECT_TRUE(c.closed_within(3000ms));
}

TEST(ServerLimits, GarbageGets400AndAClose) {
  auto server = start(echo);
  ASSERT_TRUE(server);
  expect_rejected(*server, "\x16\x03\x01 hello there\r\n\r\n", 400);
  expect_rejected(*server, "GET / HTTP/1.1\r\nHost: t\r\nBad Header\r\n\r\n", 400);
  EXPECT_EQ(server->stats().protocol_errors, 2u);
  EXPECT_EQ(server->stats().requests, 0u);
}

TEST(ServerLimits, HugeHeadersGet431) {
  ServerOptions options;
  options.limits.max_header_bytes = 1024;
  auto server = start(echo, options);
  ASSERT_TRUE(server);
  expect_rejected(*server, get("/", "X-Big: " + std::string(4000, 'a') + "\r\n"), 431);
  std::string many;
  for (int i = 0; i < 150; ++i) {
    many += "X-" + std::to_string(i) + ": v\r\n";
  }
  options.limits.max_header_bytes = 64 * 1024;
  auto other = start(echo, options);
  ASSERT_TRUE(other);
  expect_rejected(*other, get("/", many), 431);
}

TEST(ServerLimits, LongTargetGets414) {
  ServerOptions options;
  options.limits.max_start_line = 256;
  auto server = start(echo, options);
  ASSERT_TRUE(server);
  expect_rejected(*server, get("/" + std::string(1000, 'x')), 414);
}

TEST(ServerLimits, BodyOverTheLimitGets413) {
  ServerOptions options;
  options.limits.max_body = 16;
  auto server = start(echo, options);
  ASSERT_TRUE(server);
  // Declared too large: refused before the body (and instead of 100 Continue).
  expect_rejected(*server,
                  "POST / HTTP/1.1\r\nHost: t\r\nContent-Length: 1000\r\n"
                  "Expect: 100-continue\r\n\r\n",
                  413);
  // Chunked, growing over the limit.
  expect_rejected(*server,
                  "POST / HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: chunked\r\n\r\n"
                  "10\r\n0123456789abcdef\r\n10\r\n0123456789abcdef\r\n0\r\n\r\n",
                  413);
  // At the limit: accepted.
  RawClient c(server->port());
  c.send("POST / HTTP/1.1\r\nHost: t\r\nContent-Length: 16\r\n\r\n0123456789abcdef");
  auto r = c.read_response();
  ASSERT_TRUE(r);
  EXPECT_EQ(r->status, 200);
}

TEST(ServerLimits, UnknownTransferCodingGets501) {
  auto server = start(echo);
  ASSERT_TRUE(server);
  expect_rejected(*server,
                  "POST / HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: zstd-magic, chunked\r\n\r\n"
                  "0\r\n\r\n",
                  501);
}

TEST(ServerLimits, ErrorIsAnsweredAfterEarlierPipelinedResponses) {
  auto server = start(echo);
  ASSERT_TRUE(server);
  RawClient c(server->port());
  c.send(get("/ok") + "GET /\x01 HTTP/1.1\r\n\r\n");
  auto first = c.read_response();
  auto second = c.read_response();
  ASSERT_TRUE(first && second);
  EXPECT_EQ(first->status, 200);
  EXPECT_EQ(second->status, 400);
  EXPECT_TRUE(c.closed_within(3000ms));
}

TEST(ServerLimits, RandomBytesNeverCrashOrHangTheServer) {
  ServerOptions options;
  options.timeouts.header_read = 300ms;
  options.timeouts.body_read = 300ms;
  auto server = start(echo, options);
  ASSERT_TRUE(server);
  std::uint32_t seed = 12345;
  auto next = [&seed] {
    seed = seed * 1103515245u + 12345u;
    return static_cast<char>((seed >> 16) & 0xff);
  };
  const std::string prefixes[] = {"", "GET / HTTP/1.1\r\n", "POST / HTTP/1.1\r\nHost: t\r\n",
                                  "POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n"};
  for (int i = 0; i < 40; ++i) {
    RawClient c(server->port());
    std::string junk = prefixes[i % 4];
    for (int j = 0; j < 64 + i * 50; ++j) {
      junk += next();
    }
    c.send(junk);
    EXPECT_TRUE(c.closed_within(3000ms)) << "connection " << i << " was not closed";
  }
  RawClient c(server->port());
  c.send(get("/still-alive"));
  auto r = c.read_response();
  ASSERT_TRUE(r);
  EXPECT_EQ(r->body, "GET /still-alive ");
}

TEST(ServerLimits, MaxConnectionsHoldsNewConnectionsUntilOneCloses) {
  ServerOptions options;
  options.limits.max_connections = 1;
  auto server = start(echo, options);
  ASSERT_TRUE(server);
  auto first = std::make_unique<RawClient>(server->port());
  first->send(get("/1"));
  ASSERT_TRUE(first->read_response());
  RawClient second(server->port());  // the kernel completes the handshake; holdfast waits
  second.send(get("/2"));
  EXPECT_FALSE(second.fill(200ms));
  first.reset();
  auto r = second.read_response();
  ASSERT_TRUE(r);
  EXPECT_EQ(r->body, "GET /2 ");
}

TEST(ServerTimeouts, SlowlorisHeadIsCutOffAfterTheHeaderTimeout) {
  ServerOptions options;
  options.timeouts.header_read = 200ms;
  auto server = start(echo, options);
  ASSERT_TRUE(server);
  RawClient c(server->port());
  const auto begin = std::chrono::steady_clock::now();
  c.send("GET / HTTP/1.1\r\n");
  bool closed = false;
  // Trickle a header byte every 50 ms for 5 s: progress must not extend the deadline (200 ms;
  // 3 s leaves room for a loaded machine and still tells a deadline from none).
  for (int i = 0; i < 100 && !closed; ++i) {
    c.send("X");
    closed = c.closed_within(50ms);
  }
  const auto took = std::chrono::steady_clock::now() - begin;
  EXPECT_TRUE(closed);
  EXPECT_LT(took, 3000ms);
  EXPECT_NE(c.buffered().find("408"), std::string::npos);
}

TEST(ServerTimeouts, IdleKeepAliveConnectionIsClosedQuietly) {
  ServerOptions options;
  options.timeouts.keepalive_idle = 200ms;
  auto server = start(echo, options);
  ASSERT_TRUE(server);
  RawClient c(server->port());
  c.send(get("/"));
  ASSERT_TRUE(c.read_response());
  EXPECT_TRUE(c.closed_within(2000ms));
  EXPECT_TRUE(c.buffered().empty());
}

TEST(ServerTimeouts, BodyReadTimeoutCutsAStalledUpload) {
  ServerOptions options;
  options.timeouts.body_read = 200ms;
  auto server = start(echo, options);
  ASSERT_TRUE(server);
  RawClient c(server->port());
  c.send("POST / HTTP/1.1\r\nHost: t\r\nContent-Length: 100\r\n\r\npartial");
  EXPECT_TRUE(c.closed_within(2000ms));
}

TEST(ServerTimeouts, WriteStallClosesAConnectionWhoseReaderStopped) {
  ServerOptions options;
  options.timeouts.write = 200ms;
  options.socket.send_buffer = 4096;
  auto server = start(
      [](const Request&, const ResponseWriter& w) {
        w.send(text(std::string(32u << 20, 'x')));  // far more than the socket buffers hold
      },
      options);
  ASSERT_TRUE(server);
  RawClient c(server->port());
  c.send(get("/"));  // and never read
  const auto deadline = std::chrono::steady_clock::now() + 3s;
  while (server->stats().connections_open != 0 && std::chrono::steady_clock::now() < deadline) {
    std::this_thread::sleep_for(20ms);
  }
  EXPECT_EQ(server->stats().connections_open, 0u);
}

// Waits (bounded far above any load) until `flag` is set by a handler.
bool eventually(const std::atomic<bool>& flag) {
  const auto deadline = std::chrono::steady_clock::now() + 30s;
  while (!flag.load() && std::chrono::steady_clock::now() < deadline) {
    std::this_thread::sleep_for(2ms);
  }
  return flag.load();
}

TEST(ServerShutdown, InFlightRequestFinishesAndNewConnectionsAreRefused) {
  std::atomic<bool> handling{false};
  auto server = start([&handling](const Request&, const ResponseWriter& w) {
    handling = true;
    w.after(300ms, [](const ResponseWriter& later) { later.send(text("done")); });
  });
  ASSERT_TRUE(server);
  const auto port = server->port();
  RawClient busy(port);
  RawClient idle(port);
  busy.send(get("/slow"));
  ASSERT_TRUE(eventually(handling));  // the request is in the handler's hands
  auto stopping = std::async(std::launch::async, [&] { server->shutdown(5s); });
  EXPECT_TRUE(idle.closed_within(3000ms));  // idle connections close at once
  RawClient late(port);
  EXPECT_FALSE(late.connected());  // the listening socket is closed
  auto r = busy.read_response();
  ASSERT_TRUE(r);
  EXPECT_EQ(r->body, "done");
  EXPECT_EQ(r->headers["connection"], "close");
  EXPECT_TRUE(busy.closed_within(2000ms));
  EXPECT_EQ(stopping.wait_for(2s), std::future_status::ready);
  EXPECT_EQ(server->stats().connections_open, 0u);
}

TEST(ServerShutdown, GracePeriodBoundsAHandlerThatNeverAnswers) {
  std::atomic<bool> handling{false};
  auto server = start([&handling](const Request&, const ResponseWriter&) { handling = true; });
  ASSERT_TRUE(server);
  RawClient c(server->port());
  c.send(get("/"));
  ASSERT_TRUE(eventually(handling));  // the request is in the handler's hands, never answered
  const auto begin = std::chrono::steady_clock::now();
  server->shutdown(200ms);
  // Without the bound shutdown would wait forever; 5 s leaves room for a loaded machine.
  EXPECT_LT(std::chrono::steady_clock::now() - begin, 5s);
  EXPECT_TRUE(c.closed_within(1000ms));
}

TEST(ServerTls, CurlGetsAnAnswerOverTls) {
  auto cert = generate_self_signed_certificate({"localhost"}, {"127.0.0.1"});
  ASSERT_TRUE(cert) << describe(cert.error());
  ServerOptions options;
  ServerTlsOptions tls;
  tls.cert_pem = cert->cert_pem;
  tls.key_pem = cert->key_pem;
  options.tls = tls;
  auto server = start(echo, options);
  ASSERT_TRUE(server);
  const std::string command =
      "curl -sk --max-time 5 https://127.0.0.1:" + std::to_string(server->port()) +
      "/tls 2>/dev/null";
  FILE* pipe = ::popen(command.c_str(), "r");
  ASSERT_NE(pipe, nullptr);
  std::string out;
  char buf[256];
  while (auto n = std::fread(buf, 1, sizeof buf, pipe)) {
    out.append(buf, n);
  }
  ::pclose(pipe);
  EXPECT_EQ(out, "GET /tls ");
  EXPECT_GE(server->stats().tls_handshakes, 1u);
}

}  // namespace
}  // namespace holdfast
