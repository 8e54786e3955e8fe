// Server: the pieces of a response (head, body, chunks) and the responses to one read's requests
// leave in one write, so one TCP segment (and over TLS one record), not one per piece.
#include <linux/tcp.h>
#include <sys/socket.h>

#include <chrono>
#include <cstdint>
#include <initializer_list>
#include <string>

#include <gtest/gtest.h>

#include "holdfast/server.h"
#include "support/raw_client.h"

namespace holdfast::testing {
namespace {

using namespace std::chrono_literals;

// Data-carrying TCP segments this socket received so far (RFC 4898 tcpEStatsDataSegsIn). The
// server sets TCP_NODELAY, so each of its writes below the MSS goes out as its own segment.
std::uint32_t data_segments_in(int fd) {
  tcp_info info{};
  socklen_t len = sizeof info;
  EXPECT_EQ(::getsockopt(fd, IPPROTO_TCP, TCP_INFO, &info, &len), 0);
  return info.tcpi_data_segs_in;
}

// Sends `request` on a new connection, reads one response per entry of `bodies` (checking each
// body), and returns how many data segments carried them.
std::uint32_t segments_for(std::uint16_t port, const std::string& request,
                           std::initializer_list<std::string> bodies) {
  RawClient c(port);
  const std::uint32_t before = data_segments_in(c.fd());
  c.send(request);
  for (const std::string& body : bodies) {
    auto r = c.read_response();
    if (!r) {
      ADD_FAILURE() << "no response for the body " << body;
      return 0;
    }
    EXPECT_EQ(r->body, body);
  }
  return data_segments_in(c.fd()) - before;
}

TEST(ServerCork, AStreamedResponseWrittenInPiecesArrivesInOneSegment) {
  auto server = start([](const Request&, const ResponseWriter& w) {
    w.start(200, Headers{{"Content-Length", "10"}});
    w.write("hello");
    w.write("world");
    w.finish();
  });
  ASSERT_TRUE(server);
  EXPECT_EQ(segments_for(server->port(), get("/"), {"helloworld"}), 1u)
      << "head and both pieces in one write";
}

TEST(ServerCork, AChunkedResponseWithItsLastChunkArrivesInOneSegment) {
  auto server = start([](const Request&, const ResponseWriter& w) {
    w.start(200, Headers{});
    w.write("one");
    w.write("two");
    w.finish();
  });
  ASSERT_TRUE(server);
  EXPECT_EQ(segments_for(server->port(), get("/"), {"onetwo"}), 1u);
}

TEST(ServerCork, AnswersToPipelinedRequestsOfOneReadShareOneSegment) {
  auto server = start(echo);
  ASSERT_TRUE(server);
  EXPECT_EQ(segments_for(server->port(), get("/a") + get("/b") + get("/c"),
                         {"GET /a ", "GET /b ", "GET /c "}),
            1u);
}

TEST(ServerCork, AResponseSentLaterFromATimerStillLeavesHeadAndBodyTogether) {
  auto server = start([](const Request&, const ResponseWriter& w) {
    w.after(20ms, [](const ResponseWriter& later) { later.send(text("late body")); });
  });
  ASSERT_TRUE(server);
  EXPECT_EQ(segments_for(server->port(), get("/"), {"late body"}), 1u);
}

TEST(ServerCork, ARequestAfterACorkedAnswerIsStillServedOnTheSameConnection) {
  auto server = start(echo);
  ASSERT_TRUE(server);
  RawClient c(server->port());
  for (int i = 0; i < 3; ++i) {
    c.send(get("/again"));
    auto r = c.read_response();
    ASSERT_TRUE(r) << "request " << i;
    EXPECT_EQ(r->body, "GET /again ");
  }
}

}  // namespace
}  // namespace holdfast::testing
