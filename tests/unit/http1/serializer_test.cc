// HTTP/1.1 serializer: round trips through the parser, header injection refused, error category.
#include "http1/serializer.h"

#include <string>
#include <vector>

#include <gtest/gtest.h>

#include "unit/http1/event_recorder.h"

namespace holdfast::http1 {
namespace {

using testing::run_one_shot;
using Events = std::vector<std::string>;

std::span<const std::uint8_t> bytes(std::string_view s) {
  return {reinterpret_cast<const std::uint8_t*>(s.data()), s.size()};
}

TEST(Http1Serializer, RequestRoundTripsThroughTheParser) {
  std::string out;
  const std::vector<HeaderView> headers = {{"Accept", "*/*"}, {"X-Trace", "a b\tc"}};
  ASSERT_TRUE(serialize_request_head(out, "POST", "/items?x=1", "example.com", headers, 4, false));
  out += "data";
  const auto got = run_one_shot(MessageKind::request, out);
  ASSERT_FALSE(got.error) << got.error.message();
  const Events want = {"begin",
                       "method=POST",
                       "url=/items?x=1",
                       "version=1.1",
                       "header Host: example.com",
                       "header Accept: */*",
                       "header X-Trace: a b\tc",
                       "header Content-Length: 4",
                       "headers_complete v=1/1 chunked=0 cl=4",
                       "body data",
                       "complete"};
  EXPECT_EQ(got.events, want);
}

TEST(Http1Serializer, ChunkedResponseWithTrailersRoundTrips) {
  std::string out;
  ASSERT_TRUE(serialize_response_head(out, 200, "", {}, std::nullopt, true));
  serialize_chunk(out, bytes("hello "));
  serialize_chunk(out, {});  // writes nothing: an empty chunk would end the body
  serialize_chunk(out, bytes(std::string(300, 'x')));
  const std::vector<HeaderView> trailers = {{"Digest", "sha-256=abc"}};
  ASSERT_TRUE(serialize_last_chunk(out, trailers));
  const auto got = run_one_shot(MessageKind::response, out);
  ASSERT_FALSE(got.error) << got.error.message();
  const Events want = {"begin",
                       "version=1.1",
                       "reason=OK",
                       "header Transfer-Encoding: chunked",
                       "headers_complete status=200 v=1/1 chunked=1 cl=0",
                       "body hello " + std::string(300, 'x'),
                       "trailer Digest: sha-256=abc",
                       "complete"};
  EXPECT_EQ(got.events, want);
}

TEST(Http1Serializer, HeaderInjectionIsRefused) {
  std::string out;
  const std::vector<HeaderView> crlf_value = {{"X", "a\r\nInjected: yes"}};
  EXPECT_EQ(serialize_request_head(out, "GET", "/", "h", crlf_value, std::nullopt, false).error(),
            Http1Errc::invalid_header_value);
  const std::vector<HeaderView> nul_value = {{"X", std::string_view("a\0b", 3)}};
  EXPECT_EQ(serialize_response_head(out, 200, "OK", nul_value, std::nullopt, false).error(),
            Http1Errc::invalid_header_value);
  const std::vector<HeaderView> bad_name = {{"X: y\r\nZ", "v"}};
  EXPECT_EQ(serialize_request_head(out, "GET", "/", "h", bad_name, std::nullopt, false).error(),
            Http1Errc::invalid_header_name);
  EXPECT_EQ(serialize_request_head(out, "GET", "/", "h\r\nX: 1", {}, std::nullopt, false).error(),
            Http1Errc::invalid_header_value);
  EXPECT_EQ(
      serialize_request_head(out, "GET", "/ HTTP/1.1\r\n", "h", {}, std::nullopt, false).error(),
      Http1Errc::invalid_target);
  EXPECT_EQ(serialize_request_head(out, "GE T", "/", "h", {}, std::nullopt, false).error(),
            Http1Errc::invalid_method);
  EXPECT_EQ(serialize_response_head(out, 200, "OK\r\nX: 1", {}, std::nullopt, false).error(),
            Http1Errc::invalid_reason);
  EXPECT_EQ(serialize_last_chunk(out, crlf_value).error(), Http1Errc::invalid_header_value);
  EXPECT_TRUE(out.empty()) << "a refused head must append nothing";
}

TEST(Http1Serializer, FramingComesOnlyFromTheArguments) {
  std::string out;
  const std::vector<HeaderView> cl = {{"content-length", "5"}};
  EXPECT_EQ(serialize_response_head(out, 200, "", cl, std::nullopt, false).error(),
            Http1Errc::framing_header_in_list);
  const std::vector<HeaderView> host = {{"Host", "other"}};
  EXPECT_EQ(serialize_request_head(out, "GET", "/", "h", host, std::nullopt, false).error(),
            Http1Errc::framing_header_in_list);
  EXPECT_TRUE(serialize_request_head(out, "GET", "/", "", host, std::nullopt, false));
  EXPECT_EQ(serialize_response_head(out, 200, "", {}, 3, true).error(), Http1Errc::invalid_framing);
  EXPECT_EQ(serialize_response_head(out, 99, "", {}, std::nullopt, false).error(),
            Http1Errc::invalid_status);
}

TEST(Http1Serializer, ValidatorsFollowRfc9110) {
  EXPECT_TRUE(is_valid_header_name("X-Custom_1.~"));
  EXPECT_FALSE(is_valid_header_name(""));
  EXPECT_FALSE(is_valid_header_name("Bad Name"));
  EXPECT_FALSE(is_valid_header_name("Colon:"));
  EXPECT_TRUE(is_valid_header_value(""));
  EXPECT_TRUE(is_valid_header_value("D\xc3\xbcsseldorf\t(obs-text ok)"));
  EXPECT_FALSE(is_valid_header_value("a\rb"));
  EXPECT_FALSE(is_valid_header_value("a\nb"));
  EXPECT_FALSE(is_valid_header_value(std::string_view("a\0b", 3)));
}

TEST(Http1Serializer, ReasonPhrasesAreStandard) {
  EXPECT_EQ(reason_phrase(200), "OK");
  EXPECT_EQ(reason_phrase(404), "Not Found");
  EXPECT_EQ(reason_phrase(431), "Request Header Fields Too Large");
  EXPECT_EQ(reason_phrase(299), "");
}

TEST(Http1Error, CategoryNamesTheCauseAndSuggestsStatus) {
  const std::error_code ec = Http1Errc::header_too_large;
  EXPECT_STREQ(ec.category().name(), "http1");
  EXPECT_EQ(ec.category(), http1_category());
  for (int v = 1; v <= static_cast<int>(Http1Errc::framing_header_in_list); ++v) {
    const std::string msg = std::error_code(v, http1_category()).message();
    EXPECT_FALSE(msg.empty());
    EXPECT_EQ(msg.find("unknown"), std::string::npos) << v;
  }
  EXPECT_EQ(suggested_status(Http1Errc::invalid_header_name), 400);
  EXPECT_EQ(suggested_status(Http1Errc::unsupported_version), 505);
  EXPECT_EQ(suggested_status(std::make_error_code(std::errc::io_error)), 0);
  EXPECT_EQ(suggested_status({}), 0);
}

}  // namespace
}  // namespace holdfast::http1
