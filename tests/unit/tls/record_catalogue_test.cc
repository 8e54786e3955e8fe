// The malformed-record catalogue of the own record layer: each bad record ends the connection with
// the right alert and a clear error (never a hang); plus the RFC 8448 key schedule vector.
#include <string>
#include <vector>

#include <gtest/gtest.h>

#include "holdfast/tls_error.h"
#include "tls/engine.h"
#include "tls/record.h"

namespace holdfast::tls {
namespace {

std::vector<std::uint8_t> secret_of(std::uint8_t seed, std::size_t len) {
  std::vector<std::uint8_t> s(len);
  for (std::size_t i = 0; i < len; ++i) {
    s[i] = static_cast<std::uint8_t>(seed + i * 13);
  }
  return s;
}

std::span<const std::uint8_t> bytes(const std::string& s) {
  return {reinterpret_cast<const std::uint8_t*>(s.data()), s.size()};
}

// A server engine on the own record layer and the client's side of its keys, held by the test:
// `to_server` seals what a (possibly misbehaving) client sends, `from_server` opens the answers.
class RecordCatalogue : public ::testing::TestWithParam<AeadSuite> {
 protected:
  void SetUp() override {
    const auto client = secret_of(1, secret_len(GetParam()));
    const auto server = secret_of(2, secret_len(GetParam()));
    engine_ = Engine::taken_over_for_testing(GetParam(), /*is_server=*/true, client, server);
    ASSERT_TRUE(engine_);
    ASSERT_TRUE(install_secret(GetParam(), client, &to_server_));
    ASSERT_TRUE(install_secret(GetParam(), server, &from_server_));
  }

  std::vector<std::uint8_t> seal(std::uint8_t type, std::span<const std::uint8_t> content,
                                 std::size_t padding = 0) {
    std::vector<std::uint8_t> out;
    EXPECT_TRUE(seal_record(GetParam(), &to_server_, type, content, &out, padding));
    return out;
  }

  // Feeds `wire` and reads until the engine fails or has nothing more. Returns the error.
  std::error_code deliver(std::span<const std::uint8_t> wire) {
    auto fed = engine_->feed(wire);
    if (!fed) {
      return fed.error();
    }
    std::uint8_t buf[20000];
    for (int i = 0; i < 100; ++i) {
      auto n = engine_->read(buf);
      if (!n) {
        return n.error();
      }
      if (*n == 0) {
        return {};
      }
      received_.append(reinterpret_cast<const char*>(buf), *n);
    }
    return {};
  }

  // Opens everything the server sent; returns the (level, description) of the last alert, or -1.
  int last_alert() {
    std::vector<std::uint8_t> out(engine_->pending_output().begin(),
                                  engine_->pending_output().end());
    int alert = -1;
    std::size_t at = 0;
    while (at < out.size()) {
      const RecordSize size = peek_record(std::span(out).subspan(at));
      if (size.total == 0) {
        break;
      }
      const OpenedRecord r =
          open_record(GetParam(), &from_server_, std::span(out).subspan(at, size.total));
      EXPECT_FALSE(r.failure);
      if (r.type == kAlert && r.content_len == 2) {
        alert = out[at + kRecordHeaderLen + 1];
      }
      at += size.total;
    }
    return alert;
  }

  std::unique_ptr<Engine> engine_;
  DirectionKeys to_server_{};
  DirectionKeys from_server_{};
  std::string received_;
};

TEST_P(RecordCatalogue, AcceptsDataPaddingAndZeroLengthRecords) {
  auto a = seal(kApplicationData, bytes("hello "));
  auto b = seal(kApplicationData, {});
  auto c = seal(kApplicationData, bytes("world"), 300);
  a.insert(a.end(), b.begin(), b.end());
  a.insert(a.end(), c.begin(), c.end());
  EXPECT_FALSE(deliver(a));
  EXPECT_EQ(received_, "hello world");
  EXPECT_EQ(last_alert(), -1);
}

TEST_P(RecordCatalogue, FlippedTagBitIsBadRecordMac) {
  auto r = seal(kApplicationData, bytes("data"));
  r.back() ^= 0x01;
  EXPECT_EQ(deliver(r).message(), "decryption failed or bad record mac");
  EXPECT_EQ(last_alert(), kBadRecordMac);
}

TEST_P(RecordCatalogue, FlippedCiphertextBitIsBadRecordMac) {
  auto r = seal(kApplicationData, bytes("data"));
  r[kRecordHeaderLen + 1] ^= 0x80;
  EXPECT_EQ(deliver(r).message(), "decryption failed or bad record mac");
  EXPECT_EQ(last_alert(), kBadRecordMac);
}

TEST_P(RecordCatalogue, FlippedHeaderBytesAreRefused) {
  auto r = seal(kApplicationData, bytes("data"));
  r[2] ^= 0x01;  // legacy_record_version
  EXPECT_EQ(deliver(r).message(), "wrong version number");
  EXPECT_EQ(last_alert(), kProtocolVersion);
}

TEST_P(RecordCatalogue, FlippedOuterTypeIsUnexpected) {
  auto r = seal(kApplicationData, bytes("data"));
  r[0] = kHandshake;
  EXPECT_EQ(deliver(r).message(), "unexpected record");
  EXPECT_EQ(last_alert(), kUnexpectedMessage);
}

TEST_P(RecordCatalogue, ChangeCipherSpecAfterHandshakeIsUnexpected) {
  const std::uint8_t ccs[] = {kChangeCipherSpec, 3, 3, 0, 1, 1};
  EXPECT_EQ(deliver(ccs).message(), "unexpected ccs message");
  EXPECT_EQ(last_alert(), kUnexpectedMessage);
}

TEST_P(RecordCatalogue, ReplayedRecordIsBadRecordMac) {
  auto r = seal(kApplicationData, bytes("once"));
  EXPECT_FALSE(deliver(r));
  EXPECT_EQ(deliver(r).message(), "decryption failed or bad record mac");
  EXPECT_EQ(received_, "once");
  EXPECT_EQ(last_alert(), kBadRecordMac);
}

TEST_P(RecordCatalogue, OversizedLengthFailsAtOnceWithoutWaitingForTheBody) {
  const std::uint8_t header[] = {kApplicationData, 3, 3, 0x41, 0x01};  // 2^14 + 257
  EXPECT_EQ(deliver(header).message(), "encrypted length too long");
  EXPECT_EQ(last_alert(), kRecordOverflow);
}

TEST_P(RecordCatalogue, OversizedInnerPlaintextIsRecordOverflow) {
  const std::string big(16384, 'x');
  auto r = seal(kApplicationData, bytes(big), 1);  // inner plaintext 2^14 + 2
  EXPECT_EQ(deliver(r).message(), "data length too long");
  EXPECT_EQ(last_alert(), kRecordOverflow);
  EXPECT_EQ(received_, "");
}

TEST_P(RecordCatalogue, MissingContentTypeIsUnexpectedMessage) {
  auto r = seal(0, {}, 20);  // all zeros: no content type at all
  EXPECT_EQ(deliver(r).message(), "bad record type");
  EXPECT_EQ(last_alert(), kUnexpectedMessage);
}

TEST_P(RecordCatalogue, UnknownContentTypeIsUnexpectedMessage) {
  auto r = seal(99, bytes("?"));
  EXPECT_EQ(deliver(r).message(), "bad record type");
  EXPECT_EQ(last_alert(), kUnexpectedMessage);
}

TEST_P(RecordCatalogue, ThreeByteAlertIsDecodeError) {
  const std::uint8_t alert[] = {2, 40, 0};
  EXPECT_EQ(deliver(seal(kAlert, alert)).message(), "invalid alert");
  EXPECT_EQ(last_alert(), kDecodeError);
}

TEST_P(RecordCatalogue, PeerFatalAlertNamesTheAlertAndSendsNothingBack) {
  const std::uint8_t alert[] = {2, 40};
  EXPECT_EQ(deliver(seal(kAlert, alert)).message(), "sslv3 alert handshake failure");
  EXPECT_EQ(last_alert(), -1);
}

TEST_P(RecordCatalogue, KeyUpdateWithValueTwoIsIllegalParameter) {
  const std::uint8_t update[] = {24, 0, 0, 1, 2};
  EXPECT_EQ(deliver(seal(kHandshake, update)).message(), "bad key update");
  EXPECT_EQ(last_alert(), kIllegalParameter);
}

TEST_P(RecordCatalogue, KeyUpdateOfWrongLengthIsDecodeError) {
  const std::uint8_t update[] = {24, 0, 0, 2, 0, 0};
  EXPECT_EQ(deliver(seal(kHandshake, update)).message(), "length mismatch");
  EXPECT_EQ(last_alert(), kDecodeError);
}

TEST_P(RecordCatalogue, KeyUpdateNotAtRecordEndIsUnexpected) {
  const std::uint8_t two[] = {24, 0, 0, 1, 0, 24, 0, 0, 1, 0};
  EXPECT_EQ(deliver(seal(kHandshake, two)).message(), "not on record boundary");
  EXPECT_EQ(last_alert(), kUnexpectedMessage);
}

TEST_P(RecordCatalogue, SessionTicketFromAClientIsUnexpected) {
  const std::uint8_t ticket[] = {4, 0, 0, 13, 0, 0, 0, 1, 0, 0, 0, 2, 0, 0, 1, 7, 0, 0};
  EXPECT_EQ(deliver(seal(kHandshake, ticket)).message(), "unexpected message");
  EXPECT_EQ(last_alert(), kUnexpectedMessage);
}

TEST_P(RecordCatalogue, EmptyHandshakeRecordIsUnexpected) {
  EXPECT_EQ(deliver(seal(kHandshake, {})).message(), "bad length");
  EXPECT_EQ(last_alert(), kUnexpectedMessage);
}

TEST_P(RecordCatalogue, DataInsideASplitHandshakeMessageIsUnexpected) {
  const std::uint8_t half[] = {24, 0, 0};
  auto r = seal(kHandshake, half);
  auto d = seal(kApplicationData, bytes("x"));
  r.insert(r.end(), d.begin(), d.end());
  EXPECT_EQ(deliver(r).message(), "unexpected record");
  EXPECT_EQ(last_alert(), kUnexpectedMessage);
}

TEST_P(RecordCatalogue, KeyUpdateSplitAcrossRecordsIsHonoured) {
  const std::uint8_t first[] = {24, 0};
  const std::uint8_t second[] = {0, 1, 1};
  auto r = seal(kHandshake, first);
  auto r2 = seal(kHandshake, second);
  r.insert(r.end(), r2.begin(), r2.end());
  ASSERT_TRUE(update_secret(GetParam(), &to_server_));
  auto d = seal(kApplicationData, bytes("after update"));
  r.insert(r.end(), d.begin(), d.end());
  EXPECT_FALSE(deliver(r));
  EXPECT_EQ(received_, "after update");
}

TEST_P(RecordCatalogue, RequestedKeyUpdateIsAnsweredAndBothSidesMoveOn) {
  const std::uint8_t update[] = {24, 0, 0, 1, 1};  // update_requested
  EXPECT_FALSE(deliver(seal(kHandshake, update)));
  ASSERT_TRUE(update_secret(GetParam(), &to_server_));
  ASSERT_TRUE(engine_->write(bytes("under the new key")));
  std::vector<std::uint8_t> out(engine_->pending_output().begin(), engine_->pending_output().end());
  const RecordSize first = peek_record(out);
  ASSERT_GT(first.total, 0u);
  const OpenedRecord answer =
      open_record(GetParam(), &from_server_, std::span(out).first(first.total));
  ASSERT_FALSE(answer.failure);
  EXPECT_EQ(answer.type, kHandshake);
  EXPECT_EQ(std::vector<std::uint8_t>(out.begin() + 5, out.begin() + 5 + answer.content_len),
            (std::vector<std::uint8_t>{24, 0, 0, 1, 0}))
      << "answered with update_not_requested";
  ASSERT_TRUE(update_secret(GetParam(), &from_server_));
  const auto rest = std::span(out).subspan(first.total);
  const OpenedRecord data = open_record(GetParam(), &from_server_, rest);
  ASSERT_FALSE(data.failure);
  EXPECT_EQ(std::string(rest.begin() + 5, rest.begin() + 5 + data.content_len),
            "under the new key");
  EXPECT_FALSE(deliver(seal(kApplicationData, bytes("client on its new key"))));
  EXPECT_EQ(received_, "client on its new key");
}

TEST_P(RecordCatalogue, SendsKeyUpdateAutomaticallyAtTheInterval) {
  engine_->set_key_update_interval(2);
  for (int i = 0; i < 5; ++i) {
    ASSERT_TRUE(engine_->write(bytes("record " + std::to_string(i))));
  }
  std::vector<std::uint8_t> out(engine_->pending_output().begin(), engine_->pending_output().end());
  std::string types;
  for (std::size_t at = 0; at < out.size();) {
    const RecordSize size = peek_record(std::span(out).subspan(at));
    ASSERT_GT(size.total, 0u);
    const OpenedRecord r =
        open_record(GetParam(), &from_server_, std::span(out).subspan(at, size.total));
    ASSERT_FALSE(r.failure) << "record at " << at;
    types += r.type == kHandshake ? 'K' : 'd';
    if (r.type == kHandshake) {
      ASSERT_TRUE(update_secret(GetParam(), &from_server_));
    }
    at += size.total;
  }
  EXPECT_EQ(types, "ddKddKd");
}

TEST_P(RecordCatalogue, TruncatedRecordThenEofIsTruncation) {
  auto r = seal(kApplicationData, bytes("cut short"));
  r.resize(r.size() - 3);
  EXPECT_FALSE(deliver(r));
  EXPECT_FALSE(engine_->has_buffered_plaintext());
  EXPECT_EQ(engine_->on_transport_eof(), TlsErrc::peer_closed_without_close_notify);
}

TEST_P(RecordCatalogue, EofWithoutCloseNotifyIsTruncation) {
  EXPECT_FALSE(deliver(seal(kApplicationData, bytes("complete"))));
  EXPECT_EQ(engine_->on_transport_eof(), TlsErrc::peer_closed_without_close_notify);
}

TEST_P(RecordCatalogue, DataAfterCloseNotifyIsIgnored) {
  const std::uint8_t close[] = {1, kCloseNotify};
  auto r = seal(kAlert, close);
  auto d = seal(kApplicationData, bytes("ignored"));
  r.insert(r.end(), d.begin(), d.end());
  EXPECT_FALSE(deliver(r));
  EXPECT_TRUE(engine_->is_peer_closed());
  EXPECT_EQ(received_, "");
  EXPECT_FALSE(engine_->on_transport_eof());
}

TEST_P(RecordCatalogue, ErrorsStickAfterTheFirstOne) {
  auto r = seal(kApplicationData, bytes("data"));
  r.back() ^= 0x01;
  const std::error_code first = deliver(r);
  ASSERT_TRUE(first);
  EXPECT_EQ(deliver(seal(kApplicationData, bytes("more"))), first);
  EXPECT_EQ(engine_->write(bytes("x")).error(), first);
}

INSTANTIATE_TEST_SUITE_P(Suites, RecordCatalogue,
                         ::testing::Values(AeadSuite::aes_128_gcm, AeadSuite::aes_256_gcm,
                                           AeadSuite::chacha20_poly1305),
                         [](const ::testing::TestParamInfo<AeadSuite>& suite) {
                           return suite.param == AeadSuite::aes_128_gcm   ? "Aes128Gcm"
                                  : suite.param == AeadSuite::aes_256_gcm ? "Aes256Gcm"
                                                                          : "ChaCha20Poly1305";
                         });

std::vector<std::uint8_t> hex(const std::string& h) {
  std::vector<std::uint8_t> out;
  for (std::size_t i = 0; i + 1 < h.size(); i += 2) {
    out.push_back(static_cast<std::uint8_t>(std::stoi(h.substr(i, 2), nullptr, 16)));
  }
  return out;
}

TEST(TlsRecordKeys, DerivesRfc8448ServerApplicationKeyAndIv) {
  // RFC 8448 §3, "derive write traffic keys for application data" (server).
  const auto secret = hex("a11af9f05531f856ad47116b45a950328204b4f44bfb6b3a4b4f1f3fcb631643");
  DirectionKeys keys{};
  ASSERT_TRUE(install_secret(AeadSuite::aes_128_gcm, secret, &keys));
  EXPECT_EQ(std::vector<std::uint8_t>(keys.key, keys.key + 16),
            hex("9f02283b6c9c07efc26bb9f2ac92e356"));
  EXPECT_EQ(std::vector<std::uint8_t>(keys.iv, keys.iv + 12), hex("cf782b88dd83549aadf1e984"));
  EXPECT_EQ(keys.seq, 0u);
}

// The per-thread cipher contexts of busy connections never outlive their keys: a KeyUpdate and
// cleanse() (the connection's end) drop the cached key schedule.
TEST(TlsRecordKeys, CachedKeyScheduleGoesWithItsKey) {
  DirectionKeys keys{};
  ASSERT_TRUE(install_secret(AeadSuite::aes_128_gcm, secret_of(7, 32), &keys));
  const std::string content = "hello";
  std::vector<std::uint8_t> out;
  ASSERT_TRUE(seal_record(AeadSuite::aes_128_gcm, &keys, 23,
                          {reinterpret_cast<const std::uint8_t*>(content.data()), content.size()},
                          &out));
  const auto first = keys.key_id;
  EXPECT_TRUE(key_schedule_cached(first));
  ASSERT_TRUE(update_secret(AeadSuite::aes_128_gcm, &keys));
  EXPECT_FALSE(key_schedule_cached(first)) << "the old key's schedule outlived the KeyUpdate";
  ASSERT_TRUE(seal_record(AeadSuite::aes_128_gcm, &keys, 23,
                          {reinterpret_cast<const std::uint8_t*>(content.data()), content.size()},
                          &out));
  const auto second = keys.key_id;
  EXPECT_TRUE(key_schedule_cached(second));
  cleanse(&keys);
  EXPECT_FALSE(key_schedule_cached(second)) << "the key's schedule outlived cleanse()";
}

TEST(TlsRecordKeys, KeyUpdateChangesSecretKeyAndIvAndResetsSequence) {
  const auto secret = secret_of(5, 48);
  DirectionKeys keys{};
  ASSERT_TRUE(install_secret(AeadSuite::aes_256_gcm, secret, &keys));
  keys.seq = 99;
  const std::vector<std::uint8_t> old_key(keys.key, keys.key + 32);
  const auto old_id = keys.key_id;
  ASSERT_TRUE(update_secret(AeadSuite::aes_256_gcm, &keys));
  EXPECT_NE(std::vector<std::uint8_t>(keys.key, keys.key + 32), old_key);
  EXPECT_NE(std::vector<std::uint8_t>(keys.secret, keys.secret + 48), secret);
  EXPECT_EQ(keys.seq, 0u);
  EXPECT_NE(keys.key_id, old_id);
  cleanse(&keys);
  EXPECT_EQ(std::vector<std::uint8_t>(keys.secret, keys.secret + 48),
            std::vector<std::uint8_t>(48, 0));
}

}  // namespace
}  // namespace holdfast::tls
