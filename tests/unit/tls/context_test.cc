// Context tests: the shared cache, the once-parsed system CA store, option errors, error messages.
#include <string>
#include <vector>

#include <gtest/gtest.h>

#include "holdfast/error.h"
#include "holdfast/tls_error.h"
#include "tls_pair.h"

namespace holdfast::tls {
namespace {

TEST(TlsContext, SharedClientReturnsSameContextForEqualOptions) {
  ClientTlsOptions a;
  ClientTlsOptions b;
  auto ca = Context::shared_client(a);
  auto cb = Context::shared_client(b);
  ASSERT_TRUE(ca && cb);
  EXPECT_EQ(ca->get(), cb->get());
  b.alpn = {"h2", "http/1.1", "x-holdfast-test"};  // differs from any default
  auto cc = Context::shared_client(b);
  ASSERT_TRUE(cc);
  EXPECT_NE(ca->get(), cc->get());
  EXPECT_FALSE((*ca)->is_server());
}

TEST(TlsContext, SystemCaStoreIsParsedOnceAcrossManyClientsAndEngines) {
  init_once();
  EXPECT_EQ(system_ca_store_loads(), 1u);
  std::vector<std::shared_ptr<const Context>> contexts;
  for (int i = 0; i < 5; ++i) {
    ClientTlsOptions opts;
    opts.alpn = {"proto" + std::to_string(i)};
    auto c = Context::client(opts);
    ASSERT_TRUE(c);
    contexts.push_back(*c);
  }
  auto shared = Context::shared_client(ClientTlsOptions{});
  ASSERT_TRUE(shared);
  for (int i = 0; i < 1000; ++i) {
    auto engine = Engine::client(i % 2 == 0 ? *shared : contexts[i % 5], "example.test", "");
    ASSERT_TRUE(engine);
    ASSERT_TRUE((*engine)->start());
    ASSERT_TRUE((*engine)->has_pending_output());  // a ClientHello was produced
  }
  EXPECT_EQ(system_ca_store_loads(), 1u);
}

TEST(TlsContext, ServerWithoutCertificateIsRefused) {
  auto s = Context::server(ServerTlsOptions{});
  ASSERT_FALSE(s);
  EXPECT_EQ(s.error(), TlsErrc::certificate_load_failed);
}

TEST(TlsContext, ServerWithMismatchedKeyIsRefused) {
  auto one = generate_self_signed({"a.test"}, {});
  auto two = generate_self_signed({"b.test"}, {});
  ASSERT_TRUE(one && two);
  ServerTlsOptions opts;
  opts.cert_pem = one->cert_pem;
  opts.key_pem = two->key_pem;
  auto s = Context::server(opts);
  ASSERT_FALSE(s);
  EXPECT_EQ(s.error(), TlsErrc::private_key_mismatch);
}

TEST(TlsContext, MissingCaFileIsReported) {
  ClientTlsOptions opts;
  opts.ca_file = "/nonexistent/holdfast-ca.pem";
  auto c = Context::client(opts);
  ASSERT_FALSE(c);
  EXPECT_EQ(c.error(), TlsErrc::ca_load_failed);
}

TEST(TlsContext, InvalidCipherListAndAlpnAreReported) {
  ClientTlsOptions opts;
  opts.ciphers = "NOT-A-CIPHER";
  auto c = Context::client(opts);
  ASSERT_FALSE(c);
  EXPECT_EQ(c.error(), TlsErrc::invalid_cipher_list);
  opts.ciphers.clear();
  opts.alpn = {""};
  auto d = Context::client(opts);
  ASSERT_FALSE(d);
  EXPECT_EQ(d.error(), TlsErrc::invalid_alpn);
}

TEST(TlsContext, ServerLoadsChainFromFiles) {
  const auto& chain = testing::localhost_chain();
  ServerTlsOptions opts;
  opts.cert_file = testing::write_temp_file("leaf.pem", chain.leaf_cert_pem);
  opts.key_file = testing::write_temp_file("leaf.key", chain.leaf_key_pem);
  EXPECT_TRUE(Context::server(opts));
}

TEST(TlsErrors, CategoryNamesTheCause) {
  EXPECT_STREQ(tls_category().name(), "tls");
  EXPECT_EQ(make_error_code(TlsErrc::peer_closed_without_close_notify).message(),
            "connection closed without TLS close_notify (truncated)");
  EXPECT_EQ(describe(TlsErrc::handshake_failed), "tls: TLS handshake failed");
  EXPECT_FALSE(is_certificate_error(make_error_code(TlsErrc::handshake_failed)));
  EXPECT_FALSE(is_certificate_error(std::make_error_code(std::errc::connection_reset)));
}

TEST(TlsCertificates, SelfSignedHasFingerprintAndPem) {
  auto cert = generate_self_signed({"localhost", "example.test"}, {"127.0.0.1", "::1"}, 2);
  ASSERT_TRUE(cert);
  EXPECT_EQ(cert->cert_pem.rfind("-----BEGIN CERTIFICATE-----", 0), 0u);
  EXPECT_NE(cert->key_pem.find("PRIVATE KEY-----"), std::string::npos);
  EXPECT_EQ(cert->sha256_fingerprint.size(), 32u * 3 - 1);
  auto again = generate_self_signed({"localhost"}, {});
  ASSERT_TRUE(again);
  EXPECT_NE(cert->sha256_fingerprint, again->sha256_fingerprint);
}

TEST(TlsCertificates, RejectsUnparsableIpAddress) {
  auto cert = generate_self_signed({}, {"not-an-ip"});
  ASSERT_FALSE(cert);
  EXPECT_EQ(cert.error(), TlsErrc::certificate_generation_failed);
}

}  // namespace
}  // namespace holdfast::tls
