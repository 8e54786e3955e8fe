// Engine tests: handshakes, data both ways, queued writes, ALPN, close_notify, EOF, garbage,
// memory.
#include <string>

#include <gtest/gtest.h>
#include <openssl/err.h>

#include "holdfast/tls_error.h"
#include "tls_pair.h"

namespace holdfast::tls {
namespace {

using testing::bytes;
using testing::client_options;
using testing::connect_pair;
using testing::localhost_chain;
using testing::server_options;

struct Contexts {
  std::shared_ptr<const Context> client;
  std::shared_ptr<const Context> server;
};

Contexts contexts(ClientTlsOptions copts, ServerTlsOptions sopts,
                  TlsVersion server_max = TlsVersion::tls1_3) {
  auto c = Context::client(copts);
  auto s = Context::server(sopts, server_max);
  EXPECT_TRUE(c.has_value()) << (c ? "" : c.error().message());
  EXPECT_TRUE(s.has_value()) << (s ? "" : s.error().message());
  return {c ? *c : nullptr, s ? *s : nullptr};
}

Contexts default_contexts() {
  return contexts(client_options(localhost_chain()), server_options(localhost_chain()));
}

TEST(TlsEngine, HandshakesWithTls13ByDefault) {
  auto ctx = default_contexts();
  auto pair = connect_pair(ctx.client, ctx.server);
  ASSERT_TRUE(pair.handshake());
  EXPECT_EQ(pair.client().version(), "TLSv1.3");
  EXPECT_EQ(pair.server().version(), "TLSv1.3");
  EXPECT_EQ(pair.client().cipher(), pair.server().cipher());
  EXPECT_FALSE(pair.client().cipher().empty());
  EXPECT_EQ(pair.client().alpn(), ClientTlsOptions{}.alpn.front()) << "the first default offered";
  EXPECT_EQ(pair.client().peer_subject(), "CN=localhost");
  EXPECT_FALSE(pair.client().is_session_reused());
}

TEST(TlsEngine, HandshakesWithTls12WhenServerCapsVersion) {
  auto ctx = contexts(client_options(localhost_chain()), server_options(localhost_chain()),
                      TlsVersion::tls1_2);
  auto pair = connect_pair(ctx.client, ctx.server);
  ASSERT_TRUE(pair.handshake());
  EXPECT_EQ(pair.client().version(), "TLSv1.2");
  EXPECT_EQ(pair.server().version(), "TLSv1.2");
}

TEST(TlsEngine, ClientRequiringTls13RefusesTls12Server) {
  auto copts = client_options(localhost_chain());
  copts.min_version = TlsVersion::tls1_3;
  auto ctx = contexts(copts, server_options(localhost_chain()), TlsVersion::tls1_2);
  auto pair = connect_pair(ctx.client, ctx.server);
  EXPECT_FALSE(pair.handshake());
  ASSERT_TRUE(pair.client_side().error);
  EXPECT_EQ(pair.client_side().error.category(), tls_category());
  EXPECT_EQ(pair.client_side().error.message(), "tlsv1 alert protocol version");
  EXPECT_FALSE(is_certificate_error(pair.client_side().error));
}

TEST(TlsEngine, CarriesDataBothWaysIncludingOneMebibyteInPieces) {
  auto ctx = default_contexts();
  auto pair = connect_pair(ctx.client, ctx.server);
  ASSERT_TRUE(pair.handshake());
  std::string big(1 << 20, '\0');
  for (std::size_t i = 0; i < big.size(); ++i) {
    big[i] = static_cast<char>(i * 7 + i / 251);
  }
  for (std::size_t off = 0; off < big.size(); off += 10007) {
    ASSERT_TRUE(pair.client().write(bytes(big.substr(off, 10007))));
    pair.pump(1400);  // network-sized pieces, records split across feeds
  }
  ASSERT_TRUE(pair.server().write(bytes("pong")));
  pair.pump(3);
  EXPECT_EQ(pair.server_side().received.size(), big.size());
  EXPECT_TRUE(pair.server_side().received == big);
  EXPECT_EQ(pair.client_side().received, "pong");
}

TEST(TlsEngine, AcceptsWritesBeforeHandshakeAndSendsThemAfter) {
  auto ctx = default_contexts();
  auto pair = connect_pair(ctx.client, ctx.server);
  ASSERT_TRUE(pair.client().write(bytes("GET / HTTP/1.1\r\n\r\n")));
  ASSERT_TRUE(pair.server().write(bytes("early server bytes")));
  EXPECT_FALSE(pair.client().is_handshake_done());
  ASSERT_TRUE(pair.handshake());
  EXPECT_EQ(pair.server_side().received, "GET / HTTP/1.1\r\n\r\n");
  EXPECT_EQ(pair.client_side().received, "early server bytes");
}

TEST(TlsEngine, NegotiatesAlpnInServerPreferenceOrder) {
  auto copts = client_options(localhost_chain());
  copts.alpn = {"h2", "http/1.1"};
  auto sopts = server_options(localhost_chain());
  sopts.alpn = {"http/1.1", "h2"};
  auto ctx = contexts(copts, sopts);
  auto pair = connect_pair(ctx.client, ctx.server);
  ASSERT_TRUE(pair.handshake());
  EXPECT_EQ(pair.client().alpn(), "http/1.1");
  EXPECT_EQ(pair.server().alpn(), "http/1.1");

  sopts.alpn = {"h2", "http/1.1"};
  auto ctx2 = contexts(copts, sopts);
  auto pair2 = connect_pair(ctx2.client, ctx2.server);
  ASSERT_TRUE(pair2.handshake());
  EXPECT_EQ(pair2.client().alpn(), "h2");
}

TEST(TlsEngine, ContinuesWithoutAlpnWhenNothingMatches) {
  auto copts = client_options(localhost_chain());
  copts.alpn = {"h2"};
  auto sopts = server_options(localhost_chain());
  sopts.alpn = {"http/1.1"};
  auto ctx = contexts(copts, sopts);
  auto pair = connect_pair(ctx.client, ctx.server);
  ASSERT_TRUE(pair.handshake());
  EXPECT_EQ(pair.client().alpn(), "");
  EXPECT_EQ(pair.server().alpn(), "");
}

TEST(TlsEngine, PeerSeesCloseNotify) {
  auto ctx = default_contexts();
  auto pair = connect_pair(ctx.client, ctx.server);
  ASSERT_TRUE(pair.handshake());
  ASSERT_TRUE(pair.client().write(bytes("last")));
  ASSERT_TRUE(pair.client().close());
  pair.pump();
  EXPECT_EQ(pair.server_side().received, "last");
  EXPECT_TRUE(pair.server().is_peer_closed());
  EXPECT_FALSE(pair.server().on_transport_eof());
  EXPECT_FALSE(pair.client().on_transport_eof());  // we closed first: a silent peer is fine
  auto after = pair.client().write(bytes("more"));
  ASSERT_FALSE(after);
  EXPECT_EQ(after.error(), TlsErrc::closed);
}

TEST(TlsEngine, CloseBeforeHandshakeSendsQueuedDataThenCloseNotify) {
  auto ctx = default_contexts();
  auto pair = connect_pair(ctx.client, ctx.server);
  ASSERT_TRUE(pair.client().write(bytes("only request")));
  ASSERT_TRUE(pair.client().close());
  ASSERT_TRUE(pair.handshake());
  EXPECT_EQ(pair.server_side().received, "only request");
  EXPECT_TRUE(pair.server().is_peer_closed());
}

TEST(TlsEngine, ReportsEofWithoutCloseNotifyAsTruncation) {
  auto ctx = default_contexts();
  auto pair = connect_pair(ctx.client, ctx.server);
  ASSERT_TRUE(pair.handshake());
  const std::error_code ec = pair.server().on_transport_eof();
  EXPECT_EQ(ec, TlsErrc::peer_closed_without_close_notify);
  EXPECT_EQ(ec.message(), "connection closed without TLS close_notify (truncated)");
}

TEST(TlsEngine, ReportsTruncatedHandshake) {
  auto ctx = default_contexts();
  auto pair = connect_pair(ctx.client, ctx.server);
  ASSERT_TRUE(pair.client().start());
  auto hello = pair.client().pending_output();
  ASSERT_TRUE(pair.server().feed(hello));
  pair.client().consume_output(hello.size());
  auto flight = pair.server().pending_output();
  ASSERT_GT(flight.size(), 20u);
  ASSERT_TRUE(pair.client().feed(flight.first(flight.size() / 2)));
  EXPECT_FALSE(pair.client().is_handshake_done());
  EXPECT_EQ(pair.client().on_transport_eof(), TlsErrc::handshake_truncated);
  // The BIO now reports EOF: driving the handshake further fails instead of waiting forever.
  auto more = pair.client().feed({});
  ASSERT_FALSE(more);
  EXPECT_EQ(more.error().message(), "unexpected eof while reading");
}

TEST(TlsEngine, GarbageInsteadOfServerHelloGivesSpecificError) {
  auto ctx = default_contexts();
  auto pair = connect_pair(ctx.client, ctx.server);
  ASSERT_TRUE(pair.client().start());
  pair.client().consume_output(pair.client().pending_output().size());
  auto r = pair.client().feed(bytes("HTTP/1.1 400 Bad Request\r\nContent-Length: 0\r\n\r\n"));
  ASSERT_FALSE(r);
  EXPECT_EQ(r.error().category(), tls_category());
  EXPECT_EQ(r.error().message(), "wrong version number");
  EXPECT_EQ(ERR_peek_error(), 0UL) << "the OpenSSL error queue must be left empty";
  auto again = pair.client().read(std::span<std::uint8_t>{});
  ASSERT_FALSE(again);
  EXPECT_EQ(again.error(), r.error());
}

TEST(TlsEngine, ReleaseBuffersLeavesAWorkingConnection) {
  auto ctx = default_contexts();
  auto pair = connect_pair(ctx.client, ctx.server);
  ASSERT_TRUE(pair.handshake());
  for (int i = 0; i < 3; ++i) {
    pair.client().release_buffers();
    pair.server().release_buffers();
    EXPECT_FALSE(pair.client().has_pending_output());
    EXPECT_FALSE(pair.client().has_buffered_plaintext());
    const std::string msg = "round " + std::to_string(i);
    ASSERT_TRUE(pair.client().write(bytes(msg)));
    ASSERT_TRUE(pair.server().write(bytes(msg + " reply")));
    pair.pump();
  }
  EXPECT_EQ(pair.server_side().received, "round 0round 1round 2");
  EXPECT_EQ(pair.client_side().received, "round 0 replyround 1 replyround 2 reply");
}

TEST(TlsEngine, ReleaseBuffersKeepsPendingOutput) {
  auto ctx = default_contexts();
  auto pair = connect_pair(ctx.client, ctx.server);
  ASSERT_TRUE(pair.handshake());
  ASSERT_TRUE(pair.client().write(bytes("not yet sent")));
  const auto before = pair.client().pending_output().size();
  pair.client().release_buffers();
  EXPECT_EQ(pair.client().pending_output().size(), before);
  pair.pump();
  EXPECT_EQ(pair.server_side().received, "not yet sent");
}

}  // namespace
}  // namespace holdfast::tls
