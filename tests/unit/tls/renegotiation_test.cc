// TLS 1.2 renegotiation is refused by the server engine (SSL_OP_NO_RENEGOTIATION, docs/tls.md):
// a client's renegotiation ClientHello gets a no_renegotiation warning and no second handshake
// runs (RFC 5746 §4.2 lets the client then go on or give up; OpenSSL gives up).
#include <memory>
#include <string>

#include <gtest/gtest.h>
#include <openssl/bio.h>
#include <openssl/ssl.h>

#include "tls_pair.h"

namespace holdfast::tls {
namespace {

using testing::bytes;
using testing::localhost_chain;
using testing::server_options;

// A plain OpenSSL TLS 1.2 client over memory BIOs: the peer that asks to renegotiate.
class OpensslClient {
 public:
  OpensslClient() : ctx_(SSL_CTX_new(TLS_client_method()), SSL_CTX_free) {
    SSL_CTX_set_max_proto_version(ctx_.get(), TLS1_2_VERSION);
    SSL_CTX_set_verify(ctx_.get(), SSL_VERIFY_NONE, nullptr);
    ssl_.reset(SSL_new(ctx_.get()));
    in_ = BIO_new(BIO_s_mem());
    out_ = BIO_new(BIO_s_mem());
    SSL_set_bio(ssl_.get(), in_, out_);  // ssl_ owns both
    SSL_set_connect_state(ssl_.get());
  }

  SSL* ssl() { return ssl_.get(); }

  // Moves bytes both ways between this client and `server` until nothing moves; returns the
  // plaintext the server read meanwhile.
  std::string pump(Engine& server) {
    std::string server_read;
    for (int round = 0; round < 1000; ++round) {
      bool moved = false;
      char buf[16384];
      int n = 0;
      while ((n = BIO_read(out_, buf, sizeof buf)) > 0) {
        moved = true;
        last_feed_ =
            server.feed({reinterpret_cast<const std::uint8_t*>(buf), static_cast<std::size_t>(n)});
        std::uint8_t plain[16384];
        for (auto r = server.read(plain); r && *r > 0; r = server.read(plain)) {
          server_read.append(reinterpret_cast<const char*>(plain), *r);
        }
      }
      if (server.has_pending_output()) {
        auto out = server.pending_output();
        server_sent_ += out.size();
        BIO_write(in_, out.data(), static_cast<int>(out.size()));
        server.consume_output(out.size());
        moved = true;
      }
      SSL_do_handshake(ssl_.get());  // drives the handshake (or the renegotiation) on
      if (!moved) {
        break;
      }
    }
    return server_read;
  }

  std::size_t server_sent() const { return server_sent_; }
  const Result<void>& last_feed() const { return last_feed_; }

 private:
  std::unique_ptr<SSL_CTX, decltype(&SSL_CTX_free)> ctx_;
  std::unique_ptr<SSL, decltype(&SSL_free)> ssl_{nullptr, SSL_free};
  BIO* in_ = nullptr;
  BIO* out_ = nullptr;
  std::size_t server_sent_ = 0;
  Result<void> last_feed_;
};

TEST(TlsRenegotiation, ServerAnswersATls12RenegotiationWithAWarningAndNoSecondHandshake) {
  auto ctx = Context::server(server_options(localhost_chain()), TlsVersion::tls1_2);
  ASSERT_TRUE(ctx.has_value());
  auto server = Engine::server(*ctx);
  ASSERT_TRUE(server.has_value());
  OpensslClient client;
  SSL_do_handshake(client.ssl());
  client.pump(**server);
  ASSERT_TRUE((*server)->is_handshake_done());
  ASSERT_TRUE(SSL_is_init_finished(client.ssl()));
  ASSERT_STREQ(SSL_get_version(client.ssl()), "TLSv1.2");

  ASSERT_EQ(SSL_renegotiate(client.ssl()), 1);
  SSL_do_handshake(client.ssl());  // sends the renegotiation ClientHello
  const std::size_t before = client.server_sent();
  client.pump(**server);
  EXPECT_TRUE(client.last_feed()) << "refusing is not a fatal error for the server";
  // The answer is one small alert record (no_renegotiation, RFC 5746 §4.2 allows it), not a
  // ServerHello and certificate of a second handshake.
  EXPECT_GT(client.server_sent(), before);
  EXPECT_LT(client.server_sent() - before, 64u);
  EXPECT_EQ(SSL_renegotiate_pending(client.ssl()), 1) << "the renegotiation never completed";

  // OpenSSL's client gives up on hearing no_renegotiation (a fatal handshake_failure alert):
  // that is the client's choice; the server's error names it.
  auto w = (*server)->write(bytes("after"));
  if (!w) {
    EXPECT_NE(w.error().message().find("handshake failure"), std::string::npos)
        << w.error().message();
  }
}

}  // namespace
}  // namespace holdfast::tls
