// Tests for parse_url() and the Url helpers (origin, Host header, normalised string).
#include "holdfast/url.h"

#include <string>
#include <string_view>

#include <gtest/gtest.h>

#include "holdfast/error.h"

namespace holdfast {
namespace {

Url parse_ok(std::string_view text) {
  auto url = parse_url(text);
  EXPECT_TRUE(url) << text << ": " << (url ? "" : describe(url.error()));
  return url ? *url : Url{};
}

std::error_code parse_error(std::string_view text) {
  auto url = parse_url(text);
  EXPECT_FALSE(url) << text << " parsed as " << (url ? url->to_string() : "");
  return url ? std::error_code{} : url.error();
}

TEST(Url, ParsesEveryPart) {
  Url url = parse_ok("https://example.com:8443/a/b?x=1&y=2");
  EXPECT_EQ(url.scheme, "https");
  EXPECT_EQ(url.host, "example.com");
  EXPECT_EQ(url.port, 8443);
  EXPECT_EQ(url.target, "/a/b?x=1&y=2");
  EXPECT_TRUE(url.is_tls());
}

TEST(Url, DefaultPortsFollowTheScheme) {
  EXPECT_EQ(parse_ok("http://example.com/").port, 80);
  EXPECT_EQ(parse_ok("https://example.com/").port, 443);
  EXPECT_FALSE(parse_ok("http://example.com/").is_tls());
}

TEST(Url, EmptyPortMeansDefault) {
  EXPECT_EQ(parse_ok("http://example.com:/x").port, 80);
  EXPECT_EQ(parse_ok("https://example.com:").port, 443);
}

TEST(Url, EmptyPathBecomesSlash) {
  EXPECT_EQ(parse_ok("http://example.com").target, "/");
  EXPECT_EQ(parse_ok("http://example.com:81").target, "/");
  EXPECT_EQ(parse_ok("http://example.com?q=1").target, "/?q=1");
}

TEST(Url, FragmentIsDropped) {
  EXPECT_EQ(parse_ok("http://h/p?q=1#frag").target, "/p?q=1");
  EXPECT_EQ(parse_ok("http://h#frag").target, "/");
  Url url = parse_ok("http://h:8080#x/y");
  EXPECT_EQ(url.port, 8080);
  EXPECT_EQ(url.target, "/");
}

TEST(Url, LowercasesSchemeAndHostButNotPath) {
  Url url = parse_ok("HTTPS://WWW.Example.COM/Path/To?Q=Up");
  EXPECT_EQ(url.scheme, "https");
  EXPECT_EQ(url.host, "www.example.com");
  EXPECT_EQ(url.target, "/Path/To?Q=Up");
}

TEST(Url, KeepsPercentEscapesAndDotSegmentsVerbatim) {
  EXPECT_EQ(parse_ok("http://h/a%20b/../c/./d?e=%2F").target, "/a%20b/../c/./d?e=%2F");
}

TEST(Url, AcceptsIpv4Literal) {
  Url url = parse_ok("http://127.0.0.1:8080/");
  EXPECT_EQ(url.host, "127.0.0.1");
  EXPECT_EQ(url.port, 8080);
}

TEST(Url, AcceptsIpv6LiteralAndStoresItWithoutBrackets) {
  Url url = parse_ok("https://[::1]:8443/x");
  EXPECT_EQ(url.host, "::1");
  EXPECT_EQ(url.port, 8443);
  EXPECT_EQ(url.target, "/x");
  EXPECT_EQ(parse_ok("http://[2001:DB8::A]").host, "2001:db8::a");
  EXPECT_EQ(parse_ok("http://[::ffff:127.0.0.1]/").host, "::ffff:127.0.0.1");
  EXPECT_EQ(parse_ok("http://[::1]").port, 80);
}

TEST(Url, RejectsBadIpv6Literals) {
  EXPECT_EQ(parse_error("http://[::1/"), Errc::invalid_url);
  EXPECT_EQ(parse_error("http://[]/"), Errc::invalid_url);
  EXPECT_EQ(parse_error("http://[12345::]/"), Errc::invalid_url);
  EXPECT_EQ(parse_error("http://[example.com]/"), Errc::invalid_url);
  EXPECT_EQ(parse_error("http://[::1]x/"), Errc::invalid_url);
  EXPECT_EQ(parse_ok("http://[::1]:/").port, 80) << "an empty port is the default";
}

TEST(Url, RejectsUnbracketedIpv6) { EXPECT_EQ(parse_error("http://::1/"), Errc::invalid_url); }

TEST(Url, RejectsIpv6ZoneId) {
  EXPECT_EQ(parse_error("http://[fe80::1%25eth0]/"), Errc::invalid_url);
}

TEST(Url, RejectsOtherSchemesAsUnsupported) {
  EXPECT_EQ(parse_error("ftp://example.com/"), Errc::unsupported_scheme);
  EXPECT_EQ(parse_error("ws://example.com/"), Errc::unsupported_scheme);
  EXPECT_EQ(parse_error("httpx://example.com/"), Errc::unsupported_scheme);
}

TEST(Url, RejectsMissingOrMalformedScheme) {
  EXPECT_EQ(parse_error("example.com/path"), Errc::invalid_url);
  EXPECT_EQ(parse_error("//example.com/"), Errc::invalid_url);
  EXPECT_EQ(parse_error("http:/example.com/"), Errc::invalid_url);
  EXPECT_EQ(parse_error("://example.com/"), Errc::invalid_url);
  EXPECT_EQ(parse_error("1http://example.com/"), Errc::invalid_url);
  EXPECT_EQ(parse_error(""), Errc::invalid_url);
}

TEST(Url, RejectsUserinfo) {
  EXPECT_EQ(parse_error("http://user:pass@example.com/"), Errc::invalid_url);
  EXPECT_EQ(parse_error("http://good.example@evil.example/"), Errc::invalid_url);
  EXPECT_EQ(parse_error("http://@example.com/"), Errc::invalid_url);
}

TEST(Url, AllowsAtSignInPathAndQuery) {
  EXPECT_EQ(parse_ok("http://h/users/@me?to=a@b").target, "/users/@me?to=a@b");
}

TEST(Url, RejectsEmptyOrMalformedHost) {
  EXPECT_EQ(parse_error("http:///path"), Errc::invalid_url);
  EXPECT_EQ(parse_error("http://:80/"), Errc::invalid_url);
  EXPECT_EQ(parse_error("http://"), Errc::invalid_url);
  EXPECT_EQ(parse_error("http://exa%6Dple.com/"), Errc::invalid_url);
  EXPECT_EQ(parse_error("http://a,b/"), Errc::invalid_url);
  EXPECT_EQ(parse_error("http://a\\b/"), Errc::invalid_url);
}

TEST(Url, RejectsPortsOutOfRangeOrNotNumeric) {
  EXPECT_EQ(parse_error("http://h:0/"), Errc::invalid_url);
  EXPECT_EQ(parse_error("http://h:65536/"), Errc::invalid_url);
  EXPECT_EQ(parse_error("http://h:99999999999999999999/"), Errc::invalid_url);
  EXPECT_EQ(parse_error("http://h:-1/"), Errc::invalid_url);
  EXPECT_EQ(parse_error("http://h:+80/"), Errc::invalid_url);
  EXPECT_EQ(parse_error("http://h:8x/"), Errc::invalid_url);
  EXPECT_EQ(parse_error("http://h:80:81/"), Errc::invalid_url);
  EXPECT_EQ(parse_ok("http://h:65535/").port, 65535);
  EXPECT_EQ(parse_ok("http://h:1/").port, 1);
  EXPECT_EQ(parse_ok("http://h:0080/").port, 80);
}

TEST(Url, RejectsSpacesControlCharactersAndNonAscii) {
  EXPECT_EQ(parse_error("http://h/a b"), Errc::invalid_url);
  EXPECT_EQ(parse_error(" http://h/"), Errc::invalid_url);
  EXPECT_EQ(parse_error("http://h/\r\nX-Injected: 1"), Errc::invalid_url);
  EXPECT_EQ(parse_error("http://h/\t"), Errc::invalid_url);
  EXPECT_EQ(parse_error("http://h/\x7f"), Errc::invalid_url);
  EXPECT_EQ(parse_error("http://h/caf\xc3\xa9"), Errc::invalid_url);
  EXPECT_EQ(parse_error(std::string_view("http://h/\0x", 11)), Errc::invalid_url);
  EXPECT_EQ(parse_error("http://h/#frag ment"), Errc::invalid_url);
}

TEST(Url, OriginAlwaysCarriesThePort) {
  EXPECT_EQ(parse_ok("https://Example.com/x").origin(), "https://example.com:443");
  EXPECT_EQ(parse_ok("http://example.com:8080/x").origin(), "http://example.com:8080");
  EXPECT_EQ(parse_ok("http://[::1]:8080/").origin(), "http://[::1]:8080");
}

TEST(Url, HostHeaderOmitsTheDefaultPort) {
  EXPECT_EQ(parse_ok("https://example.com/").host_header(), "example.com");
  EXPECT_EQ(parse_ok("https://example.com:443/").host_header(), "example.com");
  EXPECT_EQ(parse_ok("http://example.com:80/").host_header(), "example.com");
  EXPECT_EQ(parse_ok("https://example.com:80/").host_header(), "example.com:80");
  EXPECT_EQ(parse_ok("http://example.com:443/").host_header(), "example.com:443");
  EXPECT_EQ(parse_ok("https://[::1]/").host_header(), "[::1]");
  EXPECT_EQ(parse_ok("https://[::1]:8443/").host_header(), "[::1]:8443");
}

TEST(Url, ToStringRoundTrips) {
  Url url = parse_ok("HTTP://Example.com:80?q#f");
  EXPECT_EQ(url.to_string(), "http://example.com/?q");
  auto again = parse_url(url.to_string());
  ASSERT_TRUE(again);
  EXPECT_EQ(*again, url);
}

TEST(Url, ErrorsNameTheCause) {
  EXPECT_EQ(describe(parse_error("gopher://h/")),
            "holdfast: unsupported URL scheme (only http and https)");
  EXPECT_EQ(describe(parse_error("http://u@h/")), "holdfast: invalid URL");
}

}  // namespace
}  // namespace holdfast
