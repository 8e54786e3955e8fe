// Record take-over tests: engine vs engine in memory with the own record layer on both sides, on
// one side only (the other a plain OpenSSL SSL), or off; all three suites; KeyUpdate; resumption.
#include <string>
#include <tuple>

#include <gtest/gtest.h>

#include "holdfast/tls_error.h"
#include "tls/record_slab.h"
#include "tls_pair.h"

namespace holdfast::tls {
namespace {

using testing::bytes;
using testing::client_options;
using testing::connect_pair;
using testing::localhost_chain;
using testing::Pair;
using testing::server_options;

struct Contexts {
  std::shared_ptr<const Context> client;
  std::shared_ptr<const Context> server;
};

Contexts make_contexts(bool client_takeover, bool server_takeover, const std::string& suite = "",
                       TlsVersion server_max = TlsVersion::tls1_3) {
  ClientTlsOptions copts = client_options(localhost_chain());
  copts.record_takeover = client_takeover;
  ServerTlsOptions sopts = server_options(localhost_chain());
  sopts.record_takeover = server_takeover;
  sopts.ciphersuites = suite;
  auto c = Context::client(copts);
  auto s = Context::server(sopts, server_max);
  EXPECT_TRUE(c.has_value());
  EXPECT_TRUE(s.has_value());
  return {c ? *c : nullptr, s ? *s : nullptr};
}

std::string pattern(std::size_t n, int seed) {
  std::string s(n, '\0');
  for (std::size_t i = 0; i < n; ++i) {
    s[i] = static_cast<char>(i * 31 + i / 251 + seed);
  }
  return s;
}

// Writes `n` bytes each way in uneven pieces, pumping in small chunks, and checks what arrived.
void exchange(Pair& pair, std::size_t n) {
  const std::string up = pattern(n, 1);
  const std::string down = pattern(n, 2);
  const std::size_t c0 = pair.server_side().received.size();
  const std::size_t s0 = pair.client_side().received.size();
  for (std::size_t off = 0; off < n; off += 7001) {
    ASSERT_TRUE(pair.client().write(bytes(up.substr(off, 7001))));
    ASSERT_TRUE(pair.server().write(bytes(down.substr(off, 7001))));
    pair.pump(3000);
  }
  pair.pump();
  EXPECT_EQ(pair.server_side().received.substr(c0), up);
  EXPECT_EQ(pair.client_side().received.substr(s0), down);
  EXPECT_FALSE(pair.client_side().error) << pair.client_side().error.message();
  EXPECT_FALSE(pair.server_side().error) << pair.server_side().error.message();
}

class TakeoverSuites : public ::testing::TestWithParam<std::string> {};

TEST_P(TakeoverSuites, BothSidesTakeOverAndCarryDataBothWays) {
  auto ctx = make_contexts(true, true, GetParam());
  auto pair = connect_pair(ctx.client, ctx.server);
  ASSERT_TRUE(pair.handshake());
  EXPECT_TRUE(pair.server().is_record_taken_over());
  EXPECT_TRUE(pair.client().is_record_taken_over());
  EXPECT_EQ(pair.server().record_path(), "holdfast");
  EXPECT_EQ(pair.client().cipher(), GetParam());
  EXPECT_EQ(pair.server().cipher(), GetParam());
  EXPECT_EQ(pair.client().version(), "TLSv1.3");
  EXPECT_FALSE(pair.client().alpn().empty());
  EXPECT_EQ(pair.client().alpn(), pair.server().alpn()) << "copied before the SSL was freed";
  EXPECT_EQ(pair.client().peer_subject(), "CN=localhost");
  exchange(pair, 300000);
}

TEST_P(TakeoverSuites, ServerAloneTakesOverAgainstPlainOpensslClient) {
  auto ctx = make_contexts(false, true, GetParam());
  auto pair = connect_pair(ctx.client, ctx.server);
  ASSERT_TRUE(pair.handshake());
  EXPECT_TRUE(pair.server().is_record_taken_over());
  EXPECT_FALSE(pair.client().is_record_taken_over());
  exchange(pair, 100000);
  ASSERT_TRUE(pair.client().request_key_update(true));
  exchange(pair, 1000);
  ASSERT_TRUE(pair.server().request_key_update(true));
  exchange(pair, 1000);
}

TEST_P(TakeoverSuites, ClientAloneTakesOverAgainstPlainOpensslServer) {
  auto ctx = make_contexts(true, false, GetParam());
  auto pair = connect_pair(ctx.client, ctx.server);
  ASSERT_TRUE(pair.handshake());
  EXPECT_TRUE(pair.client().is_record_taken_over());
  EXPECT_FALSE(pair.server().is_record_taken_over());
  EXPECT_EQ(pair.server().record_path(), "openssl");
  exchange(pair, 100000);
  ASSERT_TRUE(pair.server().request_key_update(true));
  exchange(pair, 1000);
  ASSERT_TRUE(pair.client().request_key_update(true));
  exchange(pair, 1000);
}

TEST_P(TakeoverSuites, KeyUpdatesBothWaysKeepTheConnection) {
  auto ctx = make_contexts(true, true, GetParam());
  auto pair = connect_pair(ctx.client, ctx.server);
  ASSERT_TRUE(pair.handshake());
  for (int i = 0; i < 10; ++i) {
    ASSERT_TRUE(pair.client().request_key_update(i % 2 == 0));
    exchange(pair, 2000);
    ASSERT_TRUE(pair.server().request_key_update(i % 3 == 0));
    exchange(pair, 2000);
  }
}

INSTANTIATE_TEST_SUITE_P(Suites, TakeoverSuites,
                         ::testing::Values("TLS_AES_128_GCM_SHA256", "TLS_AES_256_GCM_SHA384",
                                           "TLS_CHACHA20_POLY1305_SHA256"),
                         [](const ::testing::TestParamInfo<std::string>& suite) {
                           return suite.param == "TLS_AES_128_GCM_SHA256"   ? "Aes128Gcm"
                                  : suite.param == "TLS_AES_256_GCM_SHA384" ? "Aes256Gcm"
                                                                            : "ChaCha20Poly1305";
                         });

TEST(TlsTakeover, OffKeepsOpensslOnBothSides) {
  auto ctx = make_contexts(false, false);
  auto pair = connect_pair(ctx.client, ctx.server);
  ASSERT_TRUE(pair.handshake());
  EXPECT_FALSE(pair.server().is_record_taken_over());
  EXPECT_FALSE(pair.client().is_record_taken_over());
  exchange(pair, 50000);
}

TEST(TlsTakeover, Tls12KeepsTheSsl) {
  auto ctx = make_contexts(true, true, "", TlsVersion::tls1_2);
  auto pair = connect_pair(ctx.client, ctx.server);
  ASSERT_TRUE(pair.handshake());
  EXPECT_EQ(pair.server().version(), "TLSv1.2");
  EXPECT_FALSE(pair.server().is_record_taken_over());
  EXPECT_FALSE(pair.client().is_record_taken_over());
  exchange(pair, 20000);
  auto update = pair.client().request_key_update(false);
  ASSERT_FALSE(update);
  EXPECT_EQ(update.error().message(), "wrong ssl version");
}

TEST(TlsTakeover, CcmSuiteKeepsTheSsl) {
  ClientTlsOptions copts = client_options(localhost_chain());
  copts.ciphersuites = "TLS_AES_128_CCM_SHA256";
  ServerTlsOptions sopts = server_options(localhost_chain());
  sopts.ciphersuites = "TLS_AES_128_CCM_SHA256";
  auto c = Context::client(copts);
  auto s = Context::server(sopts);
  ASSERT_TRUE(c && s);
  const std::size_t slots = record_slab_stats().slots_in_use;
  auto pair = connect_pair(*c, *s);
  ASSERT_TRUE(pair.handshake());
  EXPECT_EQ(pair.server().cipher(), "TLS_AES_128_CCM_SHA256");
  EXPECT_FALSE(pair.server().is_record_taken_over());
  EXPECT_FALSE(pair.client().is_record_taken_over());
  exchange(pair, 20000);
  EXPECT_EQ(record_slab_stats().slots_in_use, slots) << "slots returned at the first refusal";
}

TEST(TlsTakeover, AutomaticKeyUpdateBeforeTheLimitBothWays) {
  auto ctx = make_contexts(true, true);
  auto pair = connect_pair(ctx.client, ctx.server);
  ASSERT_TRUE(pair.handshake());
  pair.client().set_key_update_interval(5);
  pair.server().set_key_update_interval(7);
  for (int i = 0; i < 40; ++i) {
    ASSERT_TRUE(pair.client().write(bytes("request " + std::to_string(i))));
    pair.pump();
  }
  ASSERT_TRUE(pair.client().write(bytes(pattern(100000, 3))));
  pair.pump(1000);
  EXPECT_FALSE(pair.server_side().error) << pair.server_side().error.message();
  EXPECT_FALSE(pair.client_side().error) << pair.client_side().error.message();
  EXPECT_EQ(pair.server_side().received.size(), 100000 + 40 * 9 + 30u);
}

TEST(TlsTakeover, RecordsNeverCarryMoreThanTwoToTheFourteenBytes) {
  auto ctx = make_contexts(true, true);
  auto pair = connect_pair(ctx.client, ctx.server);
  ASSERT_TRUE(pair.handshake());
  ASSERT_TRUE(pair.server().write(bytes(pattern(3 * 16384 + 5, 4))));
  auto out = pair.server().pending_output();
  std::vector<std::size_t> lengths;
  for (std::size_t at = 0; at + 5 <= out.size(); at += 5 + (out[at + 3] << 8 | out[at + 4])) {
    lengths.push_back(out[at + 3] << 8 | out[at + 4]);
  }
  // 2^14 content + 1 type byte + 16 tag bytes, exactly, then the rest.
  EXPECT_EQ(lengths, (std::vector<std::size_t>{16401, 16401, 16401, 22}));
  pair.pump();
  EXPECT_EQ(pair.client_side().received, pattern(3 * 16384 + 5, 4));
}

TEST(TlsTakeover, CloseNotifyAndHalfClose) {
  auto ctx = make_contexts(true, true);
  auto pair = connect_pair(ctx.client, ctx.server);
  ASSERT_TRUE(pair.handshake());
  ASSERT_TRUE(pair.client().write(bytes("last request")));
  ASSERT_TRUE(pair.client().close());
  pair.pump();
  EXPECT_TRUE(pair.server().is_peer_closed());
  EXPECT_EQ(pair.server_side().received, "last request");
  ASSERT_TRUE(pair.server().write(bytes("reply after the client's close_notify")));
  ASSERT_TRUE(pair.server().close());
  pair.pump();
  EXPECT_EQ(pair.client_side().received, "reply after the client's close_notify");
  EXPECT_TRUE(pair.client().is_peer_closed());
  EXPECT_FALSE(pair.client().on_transport_eof());
  EXPECT_FALSE(pair.server().on_transport_eof());
  auto after = pair.client().write(bytes("x"));
  ASSERT_FALSE(after);
  EXPECT_EQ(after.error(), TlsErrc::closed);
}

TEST(TlsTakeover, EofWithoutCloseNotifyIsTruncation) {
  auto ctx = make_contexts(true, true);
  auto pair = connect_pair(ctx.client, ctx.server);
  ASSERT_TRUE(pair.handshake());
  EXPECT_EQ(pair.server().on_transport_eof(), TlsErrc::peer_closed_without_close_notify);
}

TEST(TlsTakeover, WritesQueuedBeforeTheHandshakeGoOutAfterTakeOver) {
  auto ctx = make_contexts(true, true);
  auto pair = connect_pair(ctx.client, ctx.server);
  ASSERT_TRUE(pair.client().write(bytes("early request")));
  ASSERT_TRUE(pair.handshake());
  ASSERT_TRUE(pair.server().write(bytes("reply")));
  pair.pump();
  EXPECT_EQ(pair.server_side().received, "early request");
  EXPECT_EQ(pair.client_side().received, "reply");
  EXPECT_TRUE(pair.server().is_record_taken_over());
}

TEST(TlsTakeover, ClientWithSessionCacheTakesOverAfterTicketsAndResumes) {
  auto ctx = make_contexts(true, true);
  auto first = connect_pair(ctx.client, ctx.server, "localhost", "https://localhost:443");
  ASSERT_TRUE(first.handshake());
  EXPECT_TRUE(first.server().is_record_taken_over());
  EXPECT_TRUE(first.client().is_record_taken_over()) << "the tickets arrived with the handshake";
  exchange(first, 5000);
  ASSERT_TRUE(first.client().close());
  first.pump();
  auto second = connect_pair(ctx.client, ctx.server, "localhost", "https://localhost:443");
  ASSERT_TRUE(second.handshake());
  EXPECT_TRUE(second.client().is_session_reused());
  EXPECT_TRUE(second.server().is_session_reused());
  EXPECT_TRUE(second.client().is_record_taken_over());
  EXPECT_TRUE(second.server().is_record_taken_over());
  exchange(second, 5000);
}

TEST(TlsTakeover, ClientWaitingForTicketsTakesOverOnFirstServerRecord) {
  ClientTlsOptions copts = client_options(localhost_chain());
  ServerTlsOptions sopts = server_options(localhost_chain());
  sopts.session_tickets = 0;
  auto c = Context::client(copts);
  auto s = Context::server(sopts);
  ASSERT_TRUE(c && s);
  auto pair = connect_pair(*c, *s, "localhost", "https://localhost:443");
  ASSERT_TRUE(pair.handshake());
  EXPECT_FALSE(pair.client().is_record_taken_over()) << "no ticket and no data yet";
  exchange(pair, 3000);
  EXPECT_TRUE(pair.client().is_record_taken_over());
  exchange(pair, 3000);
}

TEST(TlsTakeover, ReleaseBuffersLeavesAWorkingConnection) {
  auto ctx = make_contexts(true, true);
  auto pair = connect_pair(ctx.client, ctx.server);
  ASSERT_TRUE(pair.handshake());
  for (int i = 0; i < 3; ++i) {
    pair.client().release_buffers();
    pair.server().release_buffers();
    EXPECT_FALSE(pair.client().has_buffered_plaintext());
    exchange(pair, 20000);
  }
}

TEST(TlsTakeover, RecordStateReturnsToTheSlab) {
  const std::size_t before = record_slab_stats().slots_in_use;
  {
    auto ctx = make_contexts(true, true);
    auto pair = connect_pair(ctx.client, ctx.server);
    ASSERT_TRUE(pair.handshake());
    EXPECT_EQ(record_slab_stats().slots_in_use, before + 2);
  }
  EXPECT_EQ(record_slab_stats().slots_in_use, before);
  {
    auto ctx = make_contexts(true, true, "", TlsVersion::tls1_2);
    auto pair = connect_pair(ctx.client, ctx.server);
    ASSERT_TRUE(pair.handshake());
    EXPECT_EQ(record_slab_stats().slots_in_use, before) << "TLS 1.2 gives its slots back";
  }
}

}  // namespace
}  // namespace holdfast::tls
