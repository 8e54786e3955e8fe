// Behaviour of the HTTP/1.1 parser beyond the llhttp vectors: feeding contract, limits, framing.
#include "http1/parser.h"

#include <string>

#include <gtest/gtest.h>

#include "unit/http1/event_recorder.h"

namespace holdfast::http1 {
namespace {

using testing::EventRecorder;
using testing::run_drip;
using testing::run_one_shot;
using Events = std::vector<std::string>;

std::span<const std::uint8_t> bytes(std::string_view s) {
  return {reinterpret_cast<const std::uint8_t*>(s.data()), s.size()};
}

struct Fixture {
  explicit Fixture(MessageKind kind, ParserLimits limits = {}) : parser(kind, rec, limits) {
    rec.parser = &parser;
  }
  EventRecorder rec;
  Parser parser;
};

constexpr std::string_view kChunkedWithTrailers =
    "POST /upload HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n"
    "5;name=value;quoted=\"a \\\"b\\\"\"\r\nhello\r\n"
    "6\r\n world\r\n"
    "0;last\r\nChecksum: abc \r\nX-Done: yes\r\n\r\n";

TEST(Http1Parser, PipelinedRequestsAreDeliveredOneAtATime) {
  Fixture f(MessageKind::request);
  const std::string first = "GET /a HTTP/1.1\r\nHost: x\r\n\r\n";
  const std::string second = "POST /b HTTP/1.1\r\nContent-Length: 3\r\n\r\nabc";
  const std::string all = first + second;
  auto used = f.parser.feed(bytes(all));
  ASSERT_TRUE(used);
  EXPECT_EQ(*used, first.size());
  EXPECT_EQ(f.rec.completed, 1U);
  EXPECT_TRUE(f.parser.is_idle());
  used = f.parser.feed(bytes(all).subspan(*used));
  ASSERT_TRUE(used);
  EXPECT_EQ(*used, second.size());
  EXPECT_EQ(f.rec.completed, 2U);
  EXPECT_EQ(f.rec.events.back(), "complete");
  EXPECT_EQ(f.rec.events[f.rec.events.size() - 2], "body abc");
}

TEST(Http1Parser, ByteByByteFeedingGivesTheSameEventsAsOneShot) {
  const auto one = run_one_shot(MessageKind::request, kChunkedWithTrailers);
  const auto drip = run_drip(MessageKind::request, kChunkedWithTrailers);
  EXPECT_FALSE(one.error);
  EXPECT_EQ(one.events, drip.events);
  EXPECT_EQ(drip.completed, 1U);
}

TEST(Http1Parser, IncompleteHeadIsNotConsumedAndCanBePassedAgain) {
  Fixture f(MessageKind::request);
  const std::string head = "GET / HTTP/1.1\r\nHost: example\r\n\r\n";
  auto used = f.parser.feed(bytes(head).first(20));
  ASSERT_TRUE(used);
  EXPECT_EQ(*used, 0U);
  EXPECT_FALSE(f.parser.is_idle());
  EXPECT_TRUE(f.rec.events.empty());
  used = f.parser.feed(bytes(head));
  ASSERT_TRUE(used);
  EXPECT_EQ(*used, head.size());
  EXPECT_EQ(f.rec.completed, 1U);
}

TEST(Http1Parser, ChunkedBodyWithExtensionsAndTrailersIsDecoded) {
  const auto out = run_one_shot(MessageKind::request, kChunkedWithTrailers);
  ASSERT_FALSE(out.error) << out.error.message();
  const Events want = {"begin",
                       "method=POST",
                       "url=/upload",
                       "version=1.1",
                       "header Host: a",
                       "header Transfer-Encoding: chunked",
                       "headers_complete v=1/1 chunked=1 cl=0",
                       "body hello world",
                       "trailer Checksum: abc",
                       "trailer X-Done: yes",
                       "complete"};
  EXPECT_EQ(out.events, want);
}

TEST(Http1Parser, ChunkSizeOverflowIsRejectedWith413) {
  const auto out = run_one_shot(MessageKind::request,
                                "POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n"
                                "10000000000000000\r\n");
  EXPECT_EQ(out.error, Http1Errc::chunk_size_overflow);
  EXPECT_EQ(suggested_status(out.error), 413);
}

TEST(Http1Parser, LargestChunkSizeIsAccepted) {
  Fixture f(MessageKind::request);
  auto used = f.parser.feed(
      bytes("POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\nffffffffffffffff\r\nab"));
  ASSERT_TRUE(used);
  EXPECT_EQ(f.rec.events.back(), "body ab");
}

TEST(Http1Parser, ChunkExtensionsBeyondTheLimitAreRejected) {
  ParserLimits limits;
  limits.max_chunk_ext = 8;
  Fixture f(MessageKind::request, limits);
  auto used =
      f.parser.feed(bytes("POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n1;aaaaaaaaaa\r\n"));
  ASSERT_FALSE(used);
  EXPECT_EQ(used.error(), Http1Errc::chunk_extension_too_long);
}

TEST(Http1Parser, LongRequestTargetIsRejectedWith414) {
  ParserLimits limits;
  limits.max_start_line = 64;
  Fixture f(MessageKind::request, limits);
  const std::string req = "GET /" + std::string(100, 'a') + " HTTP/1.1\r\n\r\n";
  auto used = f.parser.feed(bytes(req));
  ASSERT_FALSE(used);
  EXPECT_EQ(used.error(), Http1Errc::request_target_too_long);
  EXPECT_EQ(suggested_status(used.error()), 414);
}

TEST(Http1Parser, StartLineAtTheLimitIsAccepted) {
  ParserLimits limits;
  const std::string line = "GET /" + std::string(50, 'a') + " HTTP/1.1";
  limits.max_start_line = line.size();
  Fixture f(MessageKind::request, limits);
  EXPECT_TRUE(f.parser.feed(bytes(line + "\r\n\r\n")));
  EXPECT_EQ(f.rec.completed, 1U);
}

TEST(Http1Parser, LongStatusLineIsRejectedWith400) {
  ParserLimits limits;
  limits.max_start_line = 32;
  Fixture f(MessageKind::response, limits);
  auto used = f.parser.feed(bytes("HTTP/1.1 200 " + std::string(40, 'x') + "\r\n\r\n"));
  ASSERT_FALSE(used);
  EXPECT_EQ(used.error(), Http1Errc::start_line_too_long);
  EXPECT_EQ(suggested_status(used.error()), 400);
}

TEST(Http1Parser, OversizedHeaderSectionIsRejectedWith431EvenWhenIncomplete) {
  ParserLimits limits;
  limits.max_header_bytes = 256;
  Fixture f(MessageKind::request, limits);
  const std::string req = "GET / HTTP/1.1\r\nX-Big: " + std::string(300, 'v');  // no end yet
  auto used = f.parser.feed(bytes(req));
  ASSERT_FALSE(used);
  EXPECT_EQ(used.error(), Http1Errc::header_too_large);
  EXPECT_EQ(suggested_status(used.error()), 431);
}

TEST(Http1Parser, TooManyHeadersAreRejectedWith431) {
  ParserLimits limits;
  limits.max_headers = 3;
  Fixture f(MessageKind::request, limits);
  auto used = f.parser.feed(bytes("GET / HTTP/1.1\r\nA: 1\r\nB: 2\r\nC: 3\r\nD: 4\r\n\r\n"));
  ASSERT_FALSE(used);
  EXPECT_EQ(used.error(), Http1Errc::too_many_headers);
  EXPECT_EQ(suggested_status(used.error()), 431);
}

TEST(Http1Parser, CloseDelimitedResponseEndsAtFinish) {
  Fixture f(MessageKind::response);
  ASSERT_TRUE(f.parser.feed(bytes("HTTP/1.1 200 OK\r\n\r\nsome body")));
  EXPECT_EQ(f.rec.completed, 0U);
  EXPECT_FALSE(f.parser.keep_alive());
  ASSERT_TRUE(f.parser.feed(bytes(" more")));
  ASSERT_TRUE(f.parser.finish());
  EXPECT_EQ(f.rec.completed, 1U);
  EXPECT_EQ(f.rec.events[f.rec.events.size() - 2], "body some body more");
}

TEST(Http1Parser, FinishInsideHeadOrBodyIsAnError) {
  Fixture head(MessageKind::request);
  ASSERT_TRUE(head.parser.feed(bytes("GET / HTTP/1.1\r\nHo")));
  EXPECT_EQ(head.parser.finish().error(), Http1Errc::headers_truncated);
  Fixture body(MessageKind::request);
  ASSERT_TRUE(body.parser.feed(bytes("PUT / HTTP/1.1\r\nContent-Length: 5\r\n\r\nab")));
  EXPECT_EQ(body.parser.finish().error(), Http1Errc::body_truncated);
  Fixture idle(MessageKind::request);
  ASSERT_TRUE(idle.parser.feed(bytes("GET / HTTP/1.1\r\n\r\n")));
  EXPECT_TRUE(idle.parser.finish());
}

TEST(Http1Parser, ResponseToHeadHasNoBody) {
  const auto out =
      run_one_shot(MessageKind::response,
                   "HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\nHTTP/1.1 204 No Content\r\n\r\n",
                   ParserHandler::BodyMode::none);
  ASSERT_FALSE(out.error);
  EXPECT_EQ(out.completed, 2U);
  for (const auto& e : out.events) {
    EXPECT_FALSE(e.starts_with("body")) << e;
  }
}

TEST(Http1Parser, InterimResponsesPrecedeTheFinalOne) {
  const auto out = run_one_shot(MessageKind::response,
                                "HTTP/1.1 100 Continue\r\n\r\n"
                                "HTTP/1.1 103 Early Hints\r\nLink: </a.css>\r\n\r\n"
                                "HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok");
  ASSERT_FALSE(out.error);
  EXPECT_EQ(out.completed, 3U);
  EXPECT_EQ(out.events.back(), "complete");
  EXPECT_EQ(out.events[out.events.size() - 2], "body ok");
}

TEST(Http1Parser, NoContentAndNotModifiedIgnoreContentLength) {
  for (const char* status : {"204 No Content", "304 Not Modified"}) {
    const auto out =
        run_one_shot(MessageKind::response, std::string("HTTP/1.1 ") + status +
                                                "\r\nContent-Length: 5\r\n\r\nHTTP/1.1 200 OK\r\n"
                                                "Content-Length: 0\r\n\r\n");
    ASSERT_FALSE(out.error) << status;
    EXPECT_EQ(out.completed, 2U) << status;
  }
}

TEST(Http1Parser, SwitchingProtocolsStopsParsing) {
  Fixture f(MessageKind::response);
  const std::string head = "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\n\r\n";
  auto used = f.parser.feed(bytes(head + "\x81\x05hello"));
  ASSERT_TRUE(used);
  EXPECT_EQ(*used, head.size());
  EXPECT_TRUE(f.parser.is_upgrade());
  used = f.parser.feed(bytes("\x81\x05hello"));
  ASSERT_TRUE(used);
  EXPECT_EQ(*used, 0U);
  EXPECT_TRUE(f.parser.finish());
}

TEST(Http1Parser, Http2PrefaceIsLeftUnconsumed) {
  Fixture f(MessageKind::request);
  auto used = f.parser.feed(bytes("PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n"));
  ASSERT_TRUE(used);
  EXPECT_EQ(*used, 0U);
  EXPECT_TRUE(f.parser.is_upgrade());
  EXPECT_TRUE(f.rec.events.empty());
}

TEST(Http1Parser, ContentLengthWithTransferEncodingIsSmuggling) {
  const auto out = run_one_shot(MessageKind::request,
                                "POST / HTTP/1.1\r\nContent-Length: 3\r\n"
                                "Transfer-Encoding: chunked\r\n\r\n0\r\n\r\n");
  EXPECT_EQ(out.error, Http1Errc::content_length_with_transfer_encoding);
  EXPECT_NE(out.error.message().find("smuggling"), std::string::npos);
  EXPECT_TRUE(out.events.empty());
}

TEST(Http1Parser, RequestTransferCodingsAreChecked) {
  const auto not_final =
      run_one_shot(MessageKind::request, "POST / HTTP/1.1\r\nTransfer-Encoding: gzip\r\n\r\n");
  EXPECT_EQ(not_final.error, Http1Errc::invalid_transfer_encoding);
  EXPECT_EQ(suggested_status(not_final.error), 400);
  const auto unknown = run_one_shot(
      MessageKind::request, "POST / HTTP/1.1\r\nTransfer-Encoding: pigeons, chunked\r\n\r\n");
  EXPECT_EQ(unknown.error, Http1Errc::unknown_transfer_coding);
  EXPECT_EQ(suggested_status(unknown.error), 501);
}

TEST(Http1Parser, GzipBeforeChunkedIsReported) {
  Fixture f(MessageKind::request);
  ASSERT_TRUE(f.parser.feed(bytes("POST / HTTP/1.1\r\nTransfer-Encoding: gzip, chunked\r\n\r\n")));
  EXPECT_TRUE(f.parser.is_chunked());
  EXPECT_TRUE(f.parser.has_other_transfer_coding());
}

TEST(Http1Parser, UnknownMethodIsAnsweredWith501) {
  const auto out = run_one_shot(MessageKind::request, "BREW /pot HTTP/1.1\r\n\r\n");
  EXPECT_EQ(out.error, Http1Errc::unknown_method);
  EXPECT_EQ(suggested_status(out.error), 501);
}

TEST(Http1Parser, KeepAliveFollowsVersionAndConnection) {
  struct Case {
    const char* head;
    bool keep_alive;
  };
  for (const Case& c : {Case{"GET / HTTP/1.1\r\n\r\n", true},
                        Case{"GET / HTTP/1.1\r\nConnection: Close\r\n\r\n", false},
                        Case{"GET / HTTP/1.0\r\n\r\n", false},
                        Case{"GET / HTTP/1.0\r\nConnection: keep-alive\r\n\r\n", true}}) {
    Fixture f(MessageKind::request);
    ASSERT_TRUE(f.parser.feed(bytes(c.head)));
    EXPECT_EQ(f.parser.keep_alive(), c.keep_alive) << c.head;
  }
}

TEST(Http1Parser, DataAfterConnectionCloseIsRejected) {
  Fixture f(MessageKind::request);
  const std::string first = "GET / HTTP/1.1\r\nConnection: close\r\n\r\n";
  ASSERT_TRUE(f.parser.feed(bytes(first)));
  EXPECT_TRUE(f.parser.feed(bytes("\r\n")));  // stray CRLF is still tolerated (RFC 9112 §2.2)
  auto used = f.parser.feed(bytes("GET / HTTP/1.1\r\n\r\n"));
  ASSERT_FALSE(used);
  EXPECT_EQ(used.error(), Http1Errc::data_after_close);
}

TEST(Http1Parser, ExpectContinueIsReportedForHttp11Only) {
  Fixture f11(MessageKind::request);
  ASSERT_TRUE(f11.parser.feed(
      bytes("PUT / HTTP/1.1\r\nExpect: 100-Continue\r\nContent-Length: 1\r\n\r\n")));
  EXPECT_TRUE(f11.parser.expects_continue());
  Fixture f10(MessageKind::request);
  ASSERT_TRUE(f10.parser.feed(
      bytes("PUT / HTTP/1.0\r\nExpect: 100-continue\r\nContent-Length: 1\r\n\r\n")));
  EXPECT_FALSE(f10.parser.expects_continue());
}

TEST(Http1Parser, ErrorIsStickyUntilReset) {
  Fixture f(MessageKind::request);
  EXPECT_FALSE(f.parser.feed(bytes("GET / HTTP/1.1\r\nBad Name: x\r\n\r\n")));
  auto again = f.parser.feed(bytes("GET / HTTP/1.1\r\n\r\n"));
  ASSERT_FALSE(again);
  EXPECT_EQ(again.error(), Http1Errc::invalid_header_name);
  f.parser.reset();
  EXPECT_TRUE(f.parser.feed(bytes("GET / HTTP/1.1\r\n\r\n")));
  EXPECT_EQ(f.rec.completed, 1U);
}

TEST(Http1Parser, HeaderValueControlBytesAreRejected) {
  for (std::string_view bad : {std::string_view("a\0b", 3), std::string_view("a\x7f"),
                               std::string_view("a\rb"), std::string_view("a\nb")}) {
    const auto out =
        run_one_shot(MessageKind::request, "GET / HTTP/1.1\r\nX: " + std::string(bad) + "\r\n\r\n");
    EXPECT_TRUE(out.error) << "accepted a value with a control byte";
  }
}

}  // namespace
}  // namespace holdfast::http1
