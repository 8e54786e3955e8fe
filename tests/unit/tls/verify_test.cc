// Verification and resumption tests: trusted chains, self-signed and misnamed peers, session reuse.
#include <string>

#include <gtest/gtest.h>
#include <openssl/err.h>

#include "holdfast/error.h"
#include "holdfast/tls_error.h"
#include "tls_pair.h"

namespace holdfast::tls {
namespace {

using testing::client_options;
using testing::connect_pair;
using testing::localhost_chain;
using testing::server_options;

std::shared_ptr<const Context> client_ctx(const ClientTlsOptions& opts,
                                          TlsVersion max = TlsVersion::tls1_3) {
  auto c = Context::client(opts, max);
  EXPECT_TRUE(c.has_value()) << (c ? "" : c.error().message());
  return c ? *c : nullptr;
}

std::shared_ptr<const Context> server_ctx(const ServerTlsOptions& opts,
                                          TlsVersion max = TlsVersion::tls1_3) {
  auto s = Context::server(opts, max);
  EXPECT_TRUE(s.has_value()) << (s ? "" : s.error().message());
  return s ? *s : nullptr;
}

std::shared_ptr<const Context> self_signed_server() {
  auto cert = generate_self_signed({"localhost"}, {"127.0.0.1"});
  EXPECT_TRUE(cert.has_value());
  ServerTlsOptions opts;
  opts.cert_pem = cert->cert_pem;
  opts.key_pem = cert->key_pem;
  return server_ctx(opts);
}

TEST(TlsVerify, AcceptsLeafSignedByTrustedCa) {
  auto pair = connect_pair(client_ctx(client_options(localhost_chain())),
                           server_ctx(server_options(localhost_chain())));
  EXPECT_TRUE(pair.handshake());
}

TEST(TlsVerify, RefusesSelfSignedCertificateWithExactMessage) {
  // Default client options: the system CA store, which does not hold our fresh certificate.
  auto pair = connect_pair(client_ctx(ClientTlsOptions{}), self_signed_server());
  EXPECT_FALSE(pair.handshake());
  const std::error_code ec = pair.client_side().error;
  // OpenSSL 3.0 reports a lone self-signed leaf as X509_V_ERR_DEPTH_ZERO_SELF_SIGNED_CERT (18).
  EXPECT_EQ(ec.message(), "certificate verify failed: self-signed certificate");
  EXPECT_EQ(describe(ec), "tls: certificate verify failed: self-signed certificate");
  EXPECT_TRUE(is_certificate_error(ec));
  EXPECT_FALSE(pair.client().is_handshake_done());
  // The server hears the client's alert.
  EXPECT_TRUE(pair.server_side().error);
  EXPECT_EQ(ERR_peek_error(), 0UL);
}

TEST(TlsVerify, RefusesWrongHostName) {
  auto pair = connect_pair(client_ctx(client_options(localhost_chain())),
                           server_ctx(server_options(localhost_chain())), "other.example");
  EXPECT_FALSE(pair.handshake());
  EXPECT_EQ(pair.client_side().error.message(), "certificate verify failed: hostname mismatch");
  EXPECT_TRUE(is_certificate_error(pair.client_side().error));
}

TEST(TlsVerify, VerifiesIpLiteralsAsAddresses) {
  auto ok = connect_pair(client_ctx(client_options(localhost_chain())),
                         server_ctx(server_options(localhost_chain())), "127.0.0.1");
  EXPECT_TRUE(ok.handshake());
  auto bad = connect_pair(client_ctx(client_options(localhost_chain())),
                          server_ctx(server_options(localhost_chain())), "127.0.0.2");
  EXPECT_FALSE(bad.handshake());
  EXPECT_EQ(bad.client_side().error.message(), "certificate verify failed: IP address mismatch");
}

TEST(TlsVerify, RefusesChainWhenCaIsNotTrusted) {
  auto pair =
      connect_pair(client_ctx(ClientTlsOptions{}), server_ctx(server_options(localhost_chain())));
  EXPECT_FALSE(pair.handshake());
  EXPECT_EQ(pair.client_side().error.message(),
            "certificate verify failed: unable to get local issuer certificate");
}

TEST(TlsVerify, InsecureSkipVerifyAcceptsSelfSignedAndAnyName) {
  ClientTlsOptions opts;
  opts.insecure_skip_verify = true;
  auto pair = connect_pair(client_ctx(opts), self_signed_server(), "not-the-name.example");
  EXPECT_TRUE(pair.handshake()) << pair.client_side().error.message();
}

TEST(TlsVerify, RequiresServerNameWhenVerifying) {
  auto made = Engine::client(client_ctx(ClientTlsOptions{}), "", "");
  ASSERT_FALSE(made);
  EXPECT_EQ(made.error(), TlsErrc::invalid_server_name);
}

class TlsResumption : public ::testing::TestWithParam<TlsVersion> {};

TEST_P(TlsResumption, ResumesSecondConnectionWithSameSessionKey) {
  auto client = client_ctx(client_options(localhost_chain()), GetParam());
  auto server = server_ctx(server_options(localhost_chain()));
  {
    auto first = connect_pair(client, server, "localhost", "https://localhost:443");
    ASSERT_TRUE(first.handshake());
    EXPECT_FALSE(first.client().is_session_reused());
    ASSERT_TRUE(first.client().close());
    first.pump();
  }
  auto second = connect_pair(client, server, "localhost", "https://localhost:443");
  ASSERT_TRUE(second.handshake());
  EXPECT_TRUE(second.client().is_session_reused());
  EXPECT_TRUE(second.server().is_session_reused());
  EXPECT_EQ(second.client().peer_subject(), "CN=localhost");

  auto other = connect_pair(client, server, "localhost", "https://localhost:8443");
  ASSERT_TRUE(other.handshake());
  EXPECT_FALSE(other.client().is_session_reused());
}

TEST_P(TlsResumption, KeepsSessionResumableWithoutCloseNotify) {
  auto client = client_ctx(client_options(localhost_chain()), GetParam());
  auto server = server_ctx(server_options(localhost_chain()));
  {
    auto first = connect_pair(client, server, "localhost", "k");
    ASSERT_TRUE(first.handshake());
  }  // freed idle, no close_notify exchanged
  auto second = connect_pair(client, server, "localhost", "k");
  ASSERT_TRUE(second.handshake());
  EXPECT_TRUE(second.client().is_session_reused());
}

TEST_P(TlsResumption, DoesNotResumeWhenServerSendsNoTickets) {
  auto client = client_ctx(client_options(localhost_chain()), GetParam());
  auto sopts = server_options(localhost_chain());
  sopts.session_tickets = 0;
  auto server = server_ctx(sopts);
  {
    auto first = connect_pair(client, server, "localhost", "k");
    ASSERT_TRUE(first.handshake());
  }
  auto second = connect_pair(client, server, "localhost", "k");
  ASSERT_TRUE(second.handshake());
  EXPECT_FALSE(second.client().is_session_reused());
}

INSTANTIATE_TEST_SUITE_P(Versions, TlsResumption,
                         ::testing::Values(TlsVersion::tls1_3, TlsVersion::tls1_2),
                         [](const auto& test_param) {
                           return test_param.param == TlsVersion::tls1_3 ? "Tls13" : "Tls12";
                         });

}  // namespace
}  // namespace holdfast::tls
