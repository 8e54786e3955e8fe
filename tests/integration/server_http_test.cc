// Server integration: keep-alive, pipelining, HEAD, chunked bodies, streaming, 100-continue,
// threads.
#include <arpa/inet.h>
#include <netinet/in.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <map>
#include <mutex>
#include <optional>
#include <set>
#include <string>
#include <thread>
#include <vector>

#include <gtest/gtest.h>

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

TEST(ServerHttp, KeepAliveServesManyRequestsOnOneConnection) {
  auto server = start(echo);
  ASSERT_TRUE(server);
  RawClient c(server->port());
  ASSERT_TRUE(c.connected());
  for (int i = 0; i < 3; ++i) {
    c.send(get("/n" + std::to_string(i)));
    auto r = c.read_response();
    ASSERT_TRUE(r);
    EXPECT_EQ(r->status, 200);
    EXPECT_EQ(r->body, "GET /n" + std::to_string(i) + " ");
    EXPECT_EQ(r->headers.count("connection"), 0u);
  }
  EXPECT_EQ(server->stats().connections_accepted, 1u);
  EXPECT_EQ(server->stats().requests, 3u);
}

TEST(ServerHttp, ResponsesCarryDateAndServerHeaders) {
  ServerOptions options;
  options.server_header = "test-server";
  auto server = start(echo, options);
  ASSERT_TRUE(server);
  RawClient c(server->port());
  c.send(get("/"));
  auto r = c.read_response();
  ASSERT_TRUE(r);
  EXPECT_EQ(r->headers["server"], "test-server");
  ASSERT_EQ(r->headers["date"].size(), 29u);  // "Sun, 06 Nov 1994 08:49:37 GMT"
  EXPECT_EQ(r->headers["date"].substr(25), " GMT");
}

TEST(ServerHttp, PipelinedRequestsAreAnsweredInOrderWhenTheFirstIsSlow) {
  auto server = start([](const Request& request, const ResponseWriter& w) {
    if (request.url == "/slow") {
      w.after(150ms, [](const ResponseWriter& later) { later.send(text("slow")); });
      return;
    }
    w.send(text(request.url));
  });
  ASSERT_TRUE(server);
  RawClient c(server->port());
  c.send(get("/slow") + get("/fast1") + get("/fast2"));
  for (std::string expected : {"slow", "/fast1", "/fast2"}) {
    auto r = c.read_response();
    ASSERT_TRUE(r);
    EXPECT_EQ(r->body, expected);
  }
}

TEST(ServerHttp, PipeliningBeyondTheReadAheadLimitStillAnswersEveryRequestInOrder) {
  ServerOptions options;
  options.limits.max_pipelined = 1;
  auto server = start(
      [](const Request& request, const ResponseWriter& w) {
        w.after(10ms, [url = request.url](const ResponseWriter& later) { later.send(text(url)); });
      },
      options);
  ASSERT_TRUE(server);
  RawClient c(server->port());
  std::string batch;
  for (int i = 0; i < 6; ++i) {
    batch += get("/" + std::to_string(i));
  }
  c.send(batch);
  for (int i = 0; i < 6; ++i) {
    auto r = c.read_response();
    ASSERT_TRUE(r);
    EXPECT_EQ(r->body, "/" + std::to_string(i));
  }
}

TEST(ServerHttp, HeadGetsTheContentLengthOfGetButNoBody) {
  auto server = start([](const Request&, const ResponseWriter& w) { w.send(text("hello")); });
  ASSERT_TRUE(server);
  RawClient c(server->port());
  c.send("HEAD / HTTP/1.1\r\nHost: t\r\n\r\n");
  auto head = c.read_response(/*head_request=*/true);
  ASSERT_TRUE(head);
  EXPECT_EQ(head->headers["content-length"], "5");
  // Had a body been sent, it would be read as the next status line.
  c.send(get("/"));
  auto r = c.read_response();
  ASSERT_TRUE(r);
  EXPECT_EQ(r->status, 200);
  EXPECT_EQ(r->body, "hello");
}

TEST(ServerHttp, ChunkedRequestBodyReachesTheHandlerDecoded) {
  auto server = start(echo);
  ASSERT_TRUE(server);
  RawClient c(server->port());
  c.send(
      "POST /up HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: chunked\r\n\r\n"
      "5\r\nhello\r\n6\r\n world\r\n0\r\n\r\n");
  auto r = c.read_response();
  ASSERT_TRUE(r);
  EXPECT_EQ(r->body, "POST /up hello world");
}

TEST(ServerHttp, StreamedResponseIsSentChunked) {
  auto server = start([](const Request&, const ResponseWriter& w) {
    w.start(200, Headers{{"Content-Type", "text/plain"}});
    w.write("one ");
    w.after(20ms, [](const ResponseWriter& later) {
      later.write("two");
      later.finish();
    });
  });
  ASSERT_TRUE(server);
  RawClient c(server->port());
  c.send(get("/"));
  auto r = c.read_response();
  ASSERT_TRUE(r);
  EXPECT_EQ(r->headers["transfer-encoding"], "chunked");
  EXPECT_EQ(r->body, "one two");
  c.send(get("/"));  // the connection is still usable after the last chunk
  EXPECT_TRUE(c.read_response());
}

TEST(ServerHttp, ExpectContinueIsAnsweredBeforeTheBodyIsSent) {
  auto server = start(echo);
  ASSERT_TRUE(server);
  RawClient c(server->port());
  c.send("PUT /x HTTP/1.1\r\nHost: t\r\nContent-Length: 4\r\nExpect: 100-continue\r\n\r\n");
  auto interim = c.read_response();
  ASSERT_TRUE(interim);
  EXPECT_EQ(interim->status, 100);
  c.send("data");
  auto r = c.read_response();
  ASSERT_TRUE(r);
  EXPECT_EQ(r->status, 200);
  EXPECT_EQ(r->body, "PUT /x data");
}

TEST(ServerHttp, HandlerCanAnswerFromAnotherThread) {
  std::mutex mutex;
  std::vector<std::thread> workers;
  auto server = start([&](const Request& request, const ResponseWriter& w) {
    std::lock_guard lock(mutex);
    workers.emplace_back([w, url = request.url] {
      std::this_thread::sleep_for(20ms);
      w.start(201, {});
      w.write(url);
      w.finish();
    });
  });
  ASSERT_TRUE(server);
  RawClient c(server->port());
  c.send(get("/a") + get("/b"));
  auto a = c.read_response();
  auto b = c.read_response();
  ASSERT_TRUE(a && b);
  EXPECT_EQ(a->status, 201);
  EXPECT_EQ(a->body, "/a");
  EXPECT_EQ(b->body, "/b");
  std::lock_guard lock(mutex);
  for (auto& t : workers) {
    t.join();
  }
}

TEST(ServerHttp, ConnectionCloseIsHonouredAfterTheResponse) {
  auto server = start(echo);
  ASSERT_TRUE(server);
  RawClient c(server->port());
  c.send(get("/", "Connection: close\r\n"));
  auto r = c.read_response();
  ASSERT_TRUE(r);
  EXPECT_EQ(r->headers["connection"], "close");
  EXPECT_TRUE(c.closed_within(1000ms));
}

TEST(ServerHttp, Http10ClosesUnlessKeepAliveIsAsked) {
  auto server = start(echo);
  ASSERT_TRUE(server);
  {
    RawClient c(server->port());
    c.send("GET /old HTTP/1.0\r\n\r\n");
    auto r = c.read_response();
    ASSERT_TRUE(r);
    EXPECT_EQ(r->body, "GET /old ");
    EXPECT_TRUE(c.closed_within(1000ms));
  }
  RawClient c(server->port());
  c.send("GET /a HTTP/1.0\r\nConnection: keep-alive\r\n\r\n");
  auto r = c.read_response();
  ASSERT_TRUE(r);
  EXPECT_EQ(r->headers["connection"], "keep-alive");
  c.send("GET /b HTTP/1.0\r\nConnection: keep-alive\r\n\r\n");
  auto second = c.read_response();
  ASSERT_TRUE(second);
  EXPECT_EQ(second->body, "GET /b ");
}

TEST(ServerHttp, Http10StreamedResponseIsDelimitedByTheClose) {
  auto server = start([](const Request&, const ResponseWriter& w) {
    w.start(200, {});
    w.write("abc");
    w.finish();
  });
  ASSERT_TRUE(server);
  RawClient c(server->port());
  c.send("GET / HTTP/1.0\r\nConnection: keep-alive\r\n\r\n");
  auto r = c.read_response();
  ASSERT_TRUE(r);
  EXPECT_EQ(r->body, "abc");
  EXPECT_EQ(r->headers.count("transfer-encoding"), 0u);
}

TEST(ServerHttp, ConnectionsAreSpreadOverLoopThreads) {
  std::mutex mutex;
  std::set<std::thread::id> threads;
  ServerOptions options;
  options.threads = 2;
  auto server = start(
      [&](const Request& request, const ResponseWriter& w) {
        {
          std::lock_guard lock(mutex);
          threads.insert(std::this_thread::get_id());
        }
        echo(request, w);
      },
      options);
  ASSERT_TRUE(server);
  for (int i = 0; i < 4; ++i) {
    RawClient c(server->port());
    c.send(get("/"));
    ASSERT_TRUE(c.read_response());
  }
  std::lock_guard lock(mutex);
  EXPECT_EQ(threads.size(), 2u);
}

}  // namespace
}  // namespace holdfast
