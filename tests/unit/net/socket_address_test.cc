// Unit tests of SocketAddress parsing and formatting.
#include "net/socket_address.h"

#include <netinet/in.h>

#include <gtest/gtest.h>

#include "holdfast/error.h"

namespace holdfast::net {
namespace {

TEST(SocketAddress, ParsesIpv4) {
  auto a = SocketAddress::parse("127.0.0.1", 8080);
  ASSERT_TRUE(a);
  EXPECT_EQ(a->family(), AF_INET);
  EXPECT_EQ(a->port(), 8080);
  EXPECT_EQ(a->ip_string(), "127.0.0.1");
  EXPECT_EQ(a->to_string(), "127.0.0.1:8080");
  EXPECT_EQ(a->size(), sizeof(sockaddr_in));
  EXPECT_TRUE(a->is_loopback());
}

TEST(SocketAddress, ParsesIpv6WithAndWithoutBrackets) {
  auto a = SocketAddress::parse("::1", 443);
  auto b = SocketAddress::parse("[::1]", 443);
  ASSERT_TRUE(a);
  ASSERT_TRUE(b);
  EXPECT_EQ(a->family(), AF_INET6);
  EXPECT_EQ(*a, *b);
  EXPECT_EQ(a->to_string(), "[::1]:443");
  EXPECT_EQ(a->ip_string(), "::1");
  EXPECT_EQ(a->size(), sizeof(sockaddr_in6));
}

TEST(SocketAddress, ParsesNumericScope) {
  auto a = SocketAddress::parse("fe80::1%3", 80);
  ASSERT_TRUE(a);
  EXPECT_EQ(a->ip_string(), "fe80::1%3");
  EXPECT_FALSE(SocketAddress::parse("fe80::1%", 80));
}

TEST(SocketAddress, RejectsNamesAndShorthands) {
  for (const char* bad : {"localhost", "", "127.1", "1.2.3.4.5", "::1::2", "[::1", "256.0.0.1",
                          "example.com", " 127.0.0.1"}) {
    auto a = SocketAddress::parse(bad, 80);
    ASSERT_FALSE(a) << bad;
    EXPECT_EQ(a.error(), Errc::invalid_argument) << bad;
  }
}

TEST(SocketAddress, ParsesHostPort) {
  auto a = SocketAddress::parse_host_port("127.0.0.1:8080");
  ASSERT_TRUE(a);
  EXPECT_EQ(a->port(), 8080);
  auto b = SocketAddress::parse_host_port("[::1]:443");
  ASSERT_TRUE(b);
  EXPECT_EQ(b->family(), AF_INET6);
  EXPECT_EQ(b->port(), 443);
  auto zero = SocketAddress::parse_host_port("127.0.0.1:0");
  ASSERT_TRUE(zero);
  EXPECT_EQ(zero->port(), 0);
}

TEST(SocketAddress, RejectsBadHostPort) {
  for (const char* bad : {"127.0.0.1", "127.0.0.1:", "127.0.0.1:65536", "127.0.0.1:-1",
                          "127.0.0.1:80x", "::1:80", "[::1]", ":80", "host:80"}) {
    EXPECT_FALSE(SocketAddress::parse_host_port(bad)) << bad;
  }
}

TEST(SocketAddress, SetPortAndEquality) {
  auto a = SocketAddress::parse("10.1.2.3", 1);
  ASSERT_TRUE(a);
  auto b = *a;
  EXPECT_EQ(*a, b);
  b.set_port(2);
  EXPECT_EQ(b.port(), 2);
  EXPECT_FALSE(*a == b);
  EXPECT_FALSE(a->is_loopback());
  EXPECT_EQ(SocketAddress::loopback_v4(9).to_string(), "127.0.0.1:9");
}

TEST(SocketAddress, EmptyAddressIsUnspecified) {
  SocketAddress empty;
  EXPECT_EQ(empty.family(), AF_UNSPEC);
  EXPECT_EQ(empty.port(), 0);
  EXPECT_EQ(empty.to_string(), "");
  EXPECT_EQ(empty.size(), 0u);
}

}  // namespace
}  // namespace holdfast::net
