// Client HTTP/1.1 pipelining: one connection, order, close mid-pipeline, retries, off by default.
#include <sys/socket.h>
#include <sys/time.h>

#include <atomic>
#include <chrono>
#include <cstddef>
#include <future>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include <gtest/gtest.h>

#include "holdfast/client.h"
#include "holdfast/error.h"
#include "holdfast/server.h"
#include "support/raw_peer.h"
#include "support/tls_fixture.h"

namespace holdfast {
namespace {

using namespace std::chrono_literals;
using testing::RawPeer;

constexpr int kRequests = 6;

// Pipelining to `origin` over at most one connection, HTTP/1.1 only.
ClientOptions pipelining_options(const std::string& origin) {
  ClientOptions o;
  o.tls.ca_file = testing::test_certificate().cert_file;
  o.force_http1 = true;
  o.pool.max_per_origin = 1;
  o.pool.pipeline_depth = 8;
  o.pool.pipeline_origins = {origin};
  return o;
}

// Sends every request at once (asynchronously) and waits for all results, in request order.
// `deadlines[i]`, when given, replaces request i's 10 s deadline (a bound against hangs, far above
// what a loaded ASan run needs).
std::vector<Result<Response>> send_all(
    Client& client, std::vector<Request> requests,
    const std::vector<std::chrono::milliseconds>& deadlines = {}) {
  std::vector<std::promise<Result<Response>>> promises(requests.size());
  std::vector<std::future<Result<Response>>> futures;
  for (auto& p : promises) {
    futures.push_back(p.get_future());
  }
  for (std::size_t i = 0; i < requests.size(); ++i) {
    RequestOptions options;  // a missed pipeline fails, not hangs
    options.timeouts = ClientTimeouts{.deadline = i < deadlines.size() ? deadlines[i] : 10s};
    client.request_async(std::move(requests[i]), options, [&promises, i](Result<Response> r) {
      promises[i].set_value(std::move(r));
    });
  }
  std::vector<Result<Response>> results;
  for (auto& f : futures) {
    results.push_back(f.get());
  }
  return results;
}

std::vector<Request> gets(const std::string& base, int n) {
  std::vector<Request> out(static_cast<std::size_t>(n));
  for (int i = 0; i < n; ++i) {
    out[static_cast<std::size_t>(i)].url = base + "/r" + std::to_string(i);
  }
  return out;
}

// Holds every request until `n` have arrived, then answers them all (the last arrived first: the
// server puts them back in order). Only a pipelining client gets the first response.
struct HoldUntilAll {
  explicit HoldUntilAll(int n) : expected(n) {}
  void operator()(const Request& req, const ResponseWriter& w) {
    std::vector<std::pair<std::string, ResponseWriter>> ready;
    {
      std::lock_guard lock(mutex);
      held.emplace_back(req.url, w);
      if (static_cast<int>(held.size()) < expected) {
        return;
      }
      ready.swap(held);
    }
    for (auto it = ready.rbegin(); it != ready.rend(); ++it) {
      Response r;
      r.body = "body of " + it->first;
      it->second.send(std::move(r));
    }
  }
  int expected;
  std::mutex mutex;
  std::vector<std::pair<std::string, ResponseWriter>> held;
};

// Every result is the response to its own request ("body of /rI"), over `version`.
void expect_bodies_in_order(const std::vector<Result<Response>>& results, HttpVersion version) {
  for (std::size_t i = 0; i < results.size(); ++i) {
    const auto& r = results[i];
    ASSERT_TRUE(r) << i << ": " << describe(r.error());
    EXPECT_EQ(r->version, version);
    EXPECT_EQ(r->body, "body of /r" + std::to_string(i));
  }
}

TEST(ClientPipeline, SendsEveryRequestOverOneTlsConnectionBeforeTheFirstResponse) {
  auto hold = std::make_shared<HoldUntilAll>(kRequests);
  auto server =
      testing::start_server([hold](const Request& q, const ResponseWriter& w) { (*hold)(q, w); });
  const std::string base = testing::base_url(*server);
  Client client(pipelining_options(base));
  auto results = send_all(client, gets(base, kRequests));
  for (int i = 0; i < kRequests; ++i) {
    auto& r = results[static_cast<std::size_t>(i)];
    ASSERT_TRUE(r) << i << ": " << describe(r.error());
    EXPECT_EQ(r->body, "body of /r" + std::to_string(i));  // matched in order
    EXPECT_EQ(r->timings.tls_version, "TLSv1.3");
  }
  EXPECT_EQ(server->stats().connections_accepted, 1u);
  EXPECT_EQ(client.stats().connections_opened, 1u);
  EXPECT_EQ(client.stats().pipelined, static_cast<std::uint64_t>(kRequests - 1));
  EXPECT_EQ(client.stats().retries, 0u);
}

TEST(ClientPipeline, PipelinesWhenTheServerDeclinesHttp2InAlpn) {
  // The client offers h2 (default ALPN); the server picks http/1.1: the HTTP/1.1 fallback
  // pipelines.
  auto hold = std::make_shared<HoldUntilAll>(kRequests);
  ServerOptions so;
  so.bind = "127.0.0.1";
  so.tls = ServerTlsOptions{};
  so.tls->cert_pem = testing::test_certificate().cert.cert_pem;
  so.tls->key_pem = testing::test_certificate().cert.key_pem;
  so.tls->alpn = {"http/1.1"};
  auto server =
      Server::start(so, [hold](const Request& q, const ResponseWriter& w) { (*hold)(q, w); });
  ASSERT_TRUE(server) << describe(server.error());
  const std::string base = testing::base_url(**server);
  ClientOptions o = pipelining_options(base);
  o.force_http1 = false;
  Client client(o);
  expect_bodies_in_order(send_all(client, gets(base, kRequests)), HttpVersion::http1_1);
  EXPECT_EQ((*server)->stats().connections_accepted, 1u);
  EXPECT_EQ(client.stats().pipelined, static_cast<std::uint64_t>(kRequests - 1));
}

// Counts how many requests the server holds unanswered at once (each answered after 10 ms).
struct Outstanding {
  void operator()(const Request&, const ResponseWriter& w) {
    const int now = ++count;
    int seen = max.load();
    while (now > seen && !max.compare_exchange_weak(seen, now)) {
    }
    w.after(10ms, [this](const ResponseWriter& later) {
      --count;
      later.send(Response{});
    });
  }
  std::atomic<int> count{0};
  std::atomic<int> max{0};
};

TEST(ClientPipeline, IsOffByDefaultAndForOriginsNotListed) {
  auto outstanding = std::make_shared<Outstanding>();
  auto server = testing::start_server(
      [outstanding](const Request& q, const ResponseWriter& w) { (*outstanding)(q, w); });
  const std::string base = testing::base_url(*server);
  for (const bool listed_elsewhere : {false, true}) {
    ClientOptions o = pipelining_options(base);
    if (listed_elsewhere) {
      o.pool.pipeline_origins = {"https://127.0.0.1:1"};
    } else {
      o.pool = PoolOptions{};  // default pipelining settings
      o.pool.max_per_origin = 1;
    }
    Client client(o);
    for (auto& r : send_all(client, gets(base, 4))) {
      ASSERT_TRUE(r) << describe(r.error());
    }
    EXPECT_EQ(client.stats().pipelined, 0u);
  }
  EXPECT_EQ(outstanding->max.load(), 1);  // strictly one request at a time
}

TEST(ClientPipeline, Http2IsMultiplexedNotPipelined) {
  auto hold = std::make_shared<HoldUntilAll>(kRequests);
  auto server =
      testing::start_server([hold](const Request& q, const ResponseWriter& w) { (*hold)(q, w); });
  const std::string base = testing::base_url(*server);
  ClientOptions o = pipelining_options(base);
  o.force_http1 = false;
  Client client(o);
  expect_bodies_in_order(send_all(client, gets(base, kRequests)), HttpVersion::http2);
  EXPECT_EQ(client.stats().pipelined, 0u);
  EXPECT_EQ(server->stats().connections_accepted, 1u);
}

// Reads until `n` request heads arrived (bodiless requests); returns their request lines.
std::vector<std::string> read_requests(int fd, int n) {
  timeval tv{.tv_sec = 3, .tv_usec = 0};
  ::setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
  std::string in;
  std::vector<std::string> lines;
  std::size_t pos = 0;
  while (static_cast<int>(lines.size()) < n) {
    const std::size_t end = in.find("\r\n\r\n", pos);
    if (end != std::string::npos) {
      lines.push_back(in.substr(pos, in.find("\r\n", pos) - pos));
      pos = end + 4;
      continue;
    }
    char buf[4096];
    const ssize_t got = ::recv(fd, buf, sizeof buf, 0);
    if (got <= 0) {
      break;
    }
    in.append(buf, static_cast<std::size_t>(got));
  }
  return lines;
}

std::string ok(const std::string& body, const std::string& extra = "") {
  return "HTTP/1.1 200 OK\r\nContent-Length: " + std::to_string(body.size()) + "\r\n" + extra +
         "\r\n" + body;
}

TEST(ClientPipeline, MatchesResponsesInOrderAcrossInterimHeadAndBodilessOnes) {
  RawPeer peer([](int fd) {
    if (read_requests(fd, 4).size() == 4) {  // all four before any answer: pipelined
      RawPeer::write_all(fd, "HTTP/1.1 103 Early Hints\r\nLink: </s>\r\n\r\n" + ok("first") +
                                 "HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\n" +
                                 "HTTP/1.1 204 No Content\r\n\r\n" + ok("last"));
    }
    read_requests(fd, 1);  // until the client leaves
  });
  Client client(pipelining_options(peer.url("")));
  auto requests = gets(peer.url(""), 4);
  requests[1].method = "HEAD";
  auto results = send_all(client, std::move(requests));
  ASSERT_TRUE(results[0]) << describe(results[0].error());
  EXPECT_EQ(results[0]->body, "first");
  ASSERT_TRUE(results[1]) << describe(results[1].error());
  EXPECT_EQ(results[1]->headers.get("Content-Length").value_or(""), "100");
  EXPECT_EQ(results[1]->body, "");
  ASSERT_TRUE(results[2]) << describe(results[2].error());
  EXPECT_EQ(results[2]->status, 204);
  ASSERT_TRUE(results[3]) << describe(results[3].error());
  EXPECT_EQ(results[3]->body, "last");
  EXPECT_EQ(peer.accepted(), 1);
  EXPECT_EQ(client.stats().pipelined, 3u);
}

TEST(ClientPipeline, CloseMidPipelineRetriesOnlyUnansweredIdempotentRequests) {
  // Connection 1 gets GET r0, GET r1, GET r2, POST r3; answers r0, half of r1, then closes.
  // Connection 2 serves the retry.
  std::atomic<int> connection{0};
  std::vector<std::string> retried;
  RawPeer peer([&](int fd) {
    if (++connection == 1) {
      if (read_requests(fd, 4).size() == 4) {
        RawPeer::write_all(fd, ok("r0") + "HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\nhal");
      }
      return;
    }
    retried = read_requests(fd, 1);
    RawPeer::write_all(fd, ok("again"));
    read_requests(fd, 1);  // until the client leaves
  });
  const std::string base = peer.url("");
  std::vector<Result<Response>> results;
  {
    Client client(pipelining_options(base));
    auto requests = gets(base, 4);
    requests[3].method = "POST";
    results = send_all(client, std::move(requests));
    EXPECT_EQ(client.stats().retries, 1u);
    EXPECT_EQ(client.stats().pipelined, 3u);
  }
  ASSERT_TRUE(results[0]) << describe(results[0].error());
  EXPECT_EQ(results[0]->body, "r0");
  ASSERT_FALSE(results[1]);  // part of its response came: never retried
  EXPECT_EQ(results[1].error(), Errc::connection_closed) << describe(results[1].error());
  ASSERT_TRUE(results[2]) << describe(results[2].error());
  EXPECT_EQ(results[2]->body, "again");
  EXPECT_FALSE(results[2]->timings.reused_connection);
  ASSERT_FALSE(results[3]);  // not idempotent: never retried
  EXPECT_EQ(results[3].error(), Errc::closed_before_response) << describe(results[3].error());
  EXPECT_EQ(peer.accepted(), 2);
  ASSERT_EQ(retried.size(), 1u);
  EXPECT_EQ(retried[0], "GET /r2 HTTP/1.1");
}

TEST(ClientPipeline, ConnectionCloseAfterOneResponseRetriesTheRestElsewhere) {
  // Connection 1 answers r0 with "Connection: close"; r1 and r2 (pipelined, unanswered) are
  // retried, each first on a connection of its own.
  std::atomic<int> connection{0};
  RawPeer peer([&](int fd) {
    if (++connection == 1) {
      if (read_requests(fd, 3).size() == 3) {
        RawPeer::write_all(fd, ok("r0", "Connection: close\r\n"));
      }
      return;
    }
    for (int i = 0; i < 3; ++i) {
      auto line = read_requests(fd, 1);
      if (line.empty()) {
        return;
      }
      RawPeer::write_all(fd, ok(line[0].substr(4, 3)));  // "GET /r1 ..." -> "/r1"
    }
  });
  const std::string base = peer.url("");
  Client client(pipelining_options(base));
  auto results = send_all(client, gets(base, 3));
  for (int i = 0; i < 3; ++i) {
    auto& r = results[static_cast<std::size_t>(i)];
    ASSERT_TRUE(r) << i << ": " << describe(r.error());
    EXPECT_EQ(r->body, i == 0 ? "r0" : "/r" + std::to_string(i));
  }
  EXPECT_EQ(client.stats().retries, 2u);
  EXPECT_EQ(client.stats().pipelined, 2u);
}

TEST(ClientPipeline, ARequestTimingOutInThePipelineLetsTheOneAheadFinish) {
  // r1's deadline passes while r0's response is slow: r0 still completes; the connection then
  // closes (r1's response is not wanted) and r2, unanswered, is retried on a new connection.
  // r1's deadline (1 s) leaves a loaded machine time to write all three requests first; the peer
  // holds r0's answer for longer than that deadline (no signal from the client can stand for it).
  constexpr auto kShortDeadline = 1000ms;
  std::atomic<int> connection{0};
  RawPeer peer([&](int fd) {
    if (++connection == 1) {
      if (read_requests(fd, 3).size() == 3) {
        std::this_thread::sleep_for(kShortDeadline + 200ms);
        RawPeer::write_all(fd, ok("r0"));
        read_requests(fd, 1);  // until the client closes
      }
      return;
    }
    read_requests(fd, 1);
    RawPeer::write_all(fd, ok("r2"));
    read_requests(fd, 1);
  });
  Client client(pipelining_options(peer.url("")));
  auto results = send_all(client, gets(peer.url(""), 3), {10s, kShortDeadline, 10s});
  ASSERT_TRUE(results[0]) << describe(results[0].error());
  EXPECT_EQ(results[0]->body, "r0");
  ASSERT_FALSE(results[1]);
  EXPECT_EQ(results[1].error(), Errc::deadline_exceeded) << describe(results[1].error());
  ASSERT_TRUE(results[2]) << describe(results[2].error());
  EXPECT_EQ(results[2]->body, "r2");
  EXPECT_EQ(client.stats().retries, 1u);
  EXPECT_EQ(peer.accepted(), 2);
}

TEST(ClientPipeline, LargeRequestsThroughTinySocketBuffersGoOutWhole) {
  // 8 PUTs of 512 KiB pipelined through 4 KiB socket buffers: TLS writes block again and again;
  // every request must go out whole on the one connection, never reset (incident 004).
  constexpr int kPuts = 8;
  constexpr std::size_t kBody = 512 * 1024;
  ServerOptions so;
  so.socket.receive_buffer = 4096;
  auto server = testing::start_server(
      [](const Request& req, const ResponseWriter& w) {
        Response r;
        r.body = req.url + " " + std::to_string(req.body.size()) + " " +
                 std::string(1, req.body.empty() ? '-' : req.body.back());
        w.send(std::move(r));
      },
      false, so);
  const std::string base = testing::base_url(*server);
  ClientOptions o = pipelining_options(base);
  o.socket.send_buffer = 4096;
  Client client(o);
  auto requests = gets(base, kPuts);
  for (int i = 0; i < kPuts; ++i) {
    requests[static_cast<std::size_t>(i)].method = "PUT";
    requests[static_cast<std::size_t>(i)].body = std::string(kBody, static_cast<char>('a' + i));
  }
  auto results = send_all(client, std::move(requests));
  for (int i = 0; i < kPuts; ++i) {
    auto& r = results[static_cast<std::size_t>(i)];
    ASSERT_TRUE(r) << i << ": " << describe(r.error());
    EXPECT_EQ(r->body, "/r" + std::to_string(i) + " " + std::to_string(kBody) + " " +
                           std::string(1, static_cast<char>('a' + i)));
  }
  EXPECT_EQ(server->stats().connections_accepted, 1u);
  EXPECT_EQ(client.stats().pipelined, static_cast<std::uint64_t>(kPuts - 1));
  EXPECT_EQ(client.stats().retries, 0u);
}

}  // namespace
}  // namespace holdfast
