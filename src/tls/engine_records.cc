// The engine's TLS 1.3 record take-over: counting OpenSSL's records, the guards, freeing the SSL,
// and the own record layer that carries the connection afterwards (notes/tls-record-takeover.md).
#include <algorithm>
#include <atomic>
#include <cstring>
#include <new>

#include <openssl/err.h>
#include <openssl/ssl.h>

#include "base/slab.h"
#include "tls/engine.h"
#include "tls/keylog.h"
#include "tls/openssl_error.h"
#include "tls/record_slab.h"

namespace holdfast::tls {
namespace {

static_assert(sizeof(RecordState) <= kRecordSlotSize, "RecordState must fit a slab slot");

std::atomic<std::uint64_t> g_takeovers{0};

constexpr std::uint8_t kNewSessionTicket = 4;
constexpr std::uint8_t kKeyUpdate = 24;
constexpr std::size_t kMaxPostHandshakeMessage = 70000;  // a ticket of 2^16-1 plus extensions

std::error_code ssl_reason(int reason) {
  return openssl_error_code(ERR_PACK(ERR_LIB_SSL, 0, reason));
}

std::uint32_t be(std::span<const std::uint8_t> p, std::size_t n) {
  std::uint32_t v = 0;
  for (std::size_t i = 0; i < n; ++i) {
    v = v << 8 | p[i];
  }
  return v;
}

// RFC 8446 §4.6.1: lifetime, age_add, nonce<0..255>, ticket<1..2^16-1>, extensions<0..2^16-2>.
bool is_well_formed_ticket(std::span<const std::uint8_t> b) {
  std::size_t at = 8;
  if (b.size() < at + 1) {
    return false;
  }
  at += 1 + b[at];
  if (b.size() < at + 2) {
    return false;
  }
  const std::size_t ticket = be(b.subspan(at), 2);
  at += 2 + ticket;
  if (ticket == 0 || b.size() < at + 2) {
    return false;
  }
  return b.size() == at + 2 + be(b.subspan(at), 2);
}

RecordState* new_record_state(bool is_server) {
  void* slot = record_slab_allocate(sizeof(RecordState));
  if (slot == nullptr) {
    return nullptr;
  }
  auto* state = new (slot) RecordState();
  state->is_server = is_server;
  return state;
}

}  // namespace

void Engine::prepare_takeover() {
  rec_ = new_record_state(is_server_);
  if (rec_ == nullptr || !attach_secret_receiver(ssl_, rec_)) {
    drop_record_state();
    return;  // no take-over: the connection keeps its SSL
  }
  SSL_set_msg_callback(ssl_, &Engine::on_ssl_message);
  SSL_set_msg_callback_arg(ssl_, this);
}

void Engine::drop_record_state() {
  io_.read_limit = UINT64_MAX;
  if (ssl_ != nullptr) {
    attach_secret_receiver(ssl_, nullptr);
    SSL_set_msg_callback(ssl_, nullptr);
  }
  if (rec_ != nullptr) {
    cleanse(&rec_->write);  // secrets, keys and IVs; drops this thread's cached key schedules
    cleanse(&rec_->read);
    OPENSSL_cleanse(rec_, sizeof *rec_);  // the rest (sequence numbers, partial record state)
    rec_->~RecordState();
    record_slab_free(rec_);
    rec_ = nullptr;
  }
}

// Fact 4 of the note: OpenSSL 3.0 exposes no sequence numbers, so every record header it writes
// after our Finished, and reads after the peer's, is counted; bytes of headers read are summed so
// a record OpenSSL consumed only in part is detected.
void Engine::on_ssl_message(int write_p, int /*version*/, int content_type, const void* buf,
                            std::size_t len, ssl_st* /*ssl*/, void* arg) {
  auto* e = static_cast<Engine*>(arg);
  const auto* p = static_cast<const std::uint8_t*>(buf);
  if (content_type == SSL3_RT_HEADER && len >= kRecordHeaderLen) {
    if (write_p != 0) {
      e->app_records_written_ += e->own_finished_written_ ? 1 : 0;
    } else {
      e->record_bytes_seen_ += kRecordHeaderLen + (static_cast<std::size_t>(p[3]) << 8 | p[4]);
      e->app_records_read_ += e->peer_finished_read_ ? 1 : 0;
      if (e->peer_finished_read_ && !e->is_server_ && e->rec_ != nullptr) {
        // Fact 5: swap at the first idle point after the tickets began. OpenSSL would go on to
        // the response and a close_notify in the same call; it stops at this record's end.
        e->io_.read_limit = e->record_bytes_seen_;
      }
    }
  } else if (content_type == SSL3_RT_HANDSHAKE && len >= 1) {
    if (p[0] == SSL3_MT_FINISHED) {
      (write_p != 0 ? e->own_finished_written_ : e->peer_finished_read_) = true;
    } else if (p[0] == SSL3_MT_KEY_UPDATE) {
      e->ssl_key_update_seen_ = true;  // secrets moved past generation 0: keep the SSL
    }
  }
}

// Fact 3 (server) and 5 (client) of the note.
bool Engine::takeover_guards_hold() const {
  const SSL_CIPHER* cipher = SSL_get_current_cipher(ssl_);
  return rec_ != nullptr && handshake_done_ && !failed_ && SSL_version(ssl_) == TLS1_3_VERSION &&
         SSL_is_init_finished(ssl_) != 0 && SSL_in_init(ssl_) == 0 && SSL_has_pending(ssl_) == 0 &&
         SSL_pending(ssl_) == 0 && (!is_server_ || SSL_want(ssl_) == SSL_NOTHING) &&
         SSL_get_shutdown(ssl_) == 0 && SSL_get_key_update_type(ssl_) == SSL_KEY_UPDATE_NONE &&
         !ssl_key_update_seen_ && SSL_get_early_data_status(ssl_) != SSL_EARLY_DATA_ACCEPTED &&
         own_finished_written_ && peer_finished_read_ && io_.consumed == record_bytes_seen_ &&
         rec_->write_secret_len != 0 && rec_->read_secret_len != 0 && cipher != nullptr &&
         suite_from_name(SSL_CIPHER_get_name(cipher)).has_value();
}

void Engine::maybe_take_over() {
  if (rec_ == nullptr || ssl_ == nullptr || !handshake_done_ || failed_) {
    return;
  }
  const SSL_CIPHER* cipher = SSL_get_current_cipher(ssl_);
  if (SSL_version(ssl_) != TLS1_3_VERSION || ssl_key_update_seen_ || cipher == nullptr ||
      !suite_from_name(SSL_CIPHER_get_name(cipher)) || SSL_get_shutdown(ssl_) != 0) {
    drop_record_state();  // never possible on this connection: keep the SSL for good
    return;
  }
  if (!is_server_ && wants_tickets_ && app_records_read_ == 0) {
    return;  // the server's tickets (sent before any data) have not begun to arrive
  }
  if (takeover_guards_hold()) {
    take_over();
  }
}

// Keeps what the application may still ask once the SSL is gone: the ALPN protocol as its place in
// the context's own list (it is always one of ours: the server picks from its list, and OpenSSL
// refuses a server's pick that the client did not offer), and the peer certificate's subject.
bool Engine::keep_alpn_and_subject() {
  const std::string_view selected = alpn();
  if (!selected.empty()) {
    const std::string_view wire = ctx_->alpn_wire();
    for (std::size_t at = 0; at < wire.size(); at += 1 + static_cast<std::uint8_t>(wire[at])) {
      if (wire.substr(at + 1, static_cast<std::uint8_t>(wire[at])) == selected) {
        alpn_offset_ = static_cast<std::uint16_t>(at + 1);
        alpn_len_ = static_cast<std::uint8_t>(selected.size());
        break;
      }
    }
    if (alpn_len_ == 0 || wire.size() > UINT16_MAX) {
      return false;  // not ours after all: keep the SSL, which knows it
    }
  }
  const std::string subject = peer_subject();  // still read from the SSL
  if (!subject.empty()) {
    peer_subject_.reset(static_cast<char*>(base::slab_allocate(subject.size() + 1)));
    std::memcpy(peer_subject_.get(), subject.c_str(), subject.size() + 1);
  }
  return true;
}

void Engine::SlabStringFree::operator()(char* s) const noexcept {
  base::slab_free(s, std::strlen(s) + 1);
}

void Engine::take_over() {
  const SSL_CIPHER* cipher = SSL_get_current_cipher(ssl_);
  const AeadSuite suite = *suite_from_name(SSL_CIPHER_get_name(cipher));
  rec_->suite = suite;
  if (rec_->write_secret_len != secret_len(suite) || rec_->read_secret_len != secret_len(suite) ||
      !install_secret(suite, {rec_->write.secret, secret_len(suite)}, &rec_->write) ||
      !install_secret(suite, {rec_->read.secret, secret_len(suite)}, &rec_->read)) {
    drop_record_state();
    return;
  }
  if (!keep_alpn_and_subject()) {
    drop_record_state();
    return;
  }
  rec_->write.seq = app_records_written_;
  rec_->read.seq = app_records_read_;
  session_reused_ = SSL_session_reused(ssl_) == 1;
  attach_secret_receiver(ssl_, nullptr);
  // Fact 7: marked shut down both ways, SSL_free writes nothing and the session stays resumable.
  SSL_set_shutdown(ssl_, SSL_SENT_SHUTDOWN | SSL_RECEIVED_SHUTDOWN);
  SSL_free(ssl_);
  ssl_ = nullptr;
  session_key_.reset();  // no session-cache callback can come any more
  ERR_clear_error();
  g_takeovers.fetch_add(1, std::memory_order_relaxed);
}

std::string_view Engine::suite_name(AeadSuite suite) {
  switch (suite) {
    case AeadSuite::aes_128_gcm: return "TLS_AES_128_GCM_SHA256";
    case AeadSuite::aes_256_gcm: return "TLS_AES_256_GCM_SHA384";
    case AeadSuite::chacha20_poly1305: return "TLS_CHACHA20_POLY1305_SHA256";
  }
  return {};
}

std::uint64_t Engine::takeovers() { return g_takeovers.load(std::memory_order_relaxed); }

std::unique_ptr<Engine> Engine::taken_over_for_testing(
    AeadSuite suite, bool is_server, std::span<const std::uint8_t> client_secret,
    std::span<const std::uint8_t> server_secret) {
  std::unique_ptr<Engine> engine(new Engine(nullptr, nullptr));
  engine->is_server_ = is_server;
  engine->handshake_done_ = true;
  engine->rec_ = new_record_state(is_server);
  if (engine->rec_ == nullptr) {
    return nullptr;
  }
  engine->rec_->suite = suite;
  const auto write = is_server ? server_secret : client_secret;
  const auto read = is_server ? client_secret : server_secret;
  if (!install_secret(suite, write, &engine->rec_->write) ||
      !install_secret(suite, read, &engine->rec_->read)) {
    return nullptr;
  }
  return engine;
}

Unexpected Engine::fail_with_alert(std::uint8_t alert, int reason) {
  if (!close_sent_ && rec_ != nullptr) {
    close_sent_ = true;
    const std::uint8_t fatal[] = {2, alert};  // RFC 8446 §6.2: level is ignored, but fatal it is
    (void)seal(kAlert, fatal);
  }
  return fail_with(ssl_reason(reason));
}

Result<void> Engine::seal(std::uint8_t type, std::span<const std::uint8_t> content) {
  if (!seal_record(rec_->suite, &rec_->write, type, content, &io_.out)) {
    return fail_with(make_error_code(TlsErrc::internal_error));
  }
  return {};
}

Result<void> Engine::send_key_update(bool update_requested) {
  const std::uint8_t message[] = {kKeyUpdate, 0, 0, 1,
                                  static_cast<std::uint8_t>(update_requested ? 1 : 0)};
  HOLDFAST_TRY(seal(kHandshake, message));
  if (!update_secret(rec_->suite, &rec_->write)) {  // RFC 8446 §4.6.3: our next record uses it
    return fail_with(make_error_code(TlsErrc::internal_error));
  }
  rec_->key_update_requested = rec_->key_update_requested || update_requested;
  return {};
}

Result<void> Engine::request_key_update(bool update_requested) {
  if (failed_) {
    return fail(failed_);
  }
  if (!handshake_done_ || close_requested_) {
    return fail(TlsErrc::closed);
  }
  if (is_record_taken_over()) {
    return send_key_update(update_requested);
  }
  ErrorQueueGuard guard;
  if (SSL_key_update(
          ssl_, update_requested ? SSL_KEY_UPDATE_REQUESTED : SSL_KEY_UPDATE_NOT_REQUESTED) != 1) {
    return fail(take_error(ssl_, make_error_code(TlsErrc::internal_error)));
  }
  ssl_key_update_seen_ = true;
  const int r = SSL_do_handshake(ssl_);  // writes the KeyUpdate now (into our output queue)
  const int e = r == 1 ? SSL_ERROR_NONE : SSL_get_error(ssl_, r);
  if (e != SSL_ERROR_NONE && e != SSL_ERROR_WANT_READ && e != SSL_ERROR_WANT_WRITE) {
    return fail_with(take_error(ssl_, make_error_code(TlsErrc::internal_error)));
  }
  return {};
}

Result<void> Engine::write_records(std::span<const std::uint8_t> plaintext) {
  while (!plaintext.empty()) {
    if (rec_->write.seq >= key_update_interval_) {
      HOLDFAST_TRY(send_key_update(false));  // RFC 8446 §5.5: well before the AEAD limit
    }
    const std::size_t n = std::min(plaintext.size(), kMaxPlaintextLen);
    HOLDFAST_TRY(seal(kApplicationData, plaintext.first(n)));
    plaintext = plaintext.subspan(n);
  }
  return {};
}

bool Engine::has_whole_record() const {
  const RecordSize size = peek_record(std::span(io_.in).subspan(io_.in_pos));
  return size.total != 0 || size.failure.has_value();
}

Result<std::size_t> Engine::read_records(std::span<std::uint8_t> out) {
  std::size_t total = 0;
  while (total < out.size() && !peer_closed_ && !failed_) {
    if (plain_left_ > 0) {
      const std::size_t n = std::min<std::size_t>(plain_left_, out.size() - total);
      std::memcpy(out.data() + total, io_.in.data() + io_.in_pos, n);
      io_.in_pos += n;
      plain_left_ -= static_cast<std::uint32_t>(n);
      total += n;
      if (plain_left_ == 0) {
        io_.in_pos += std::exchange(plain_skip_, 0);
      }
      continue;
    }
    const std::span<std::uint8_t> in = std::span(io_.in).subspan(io_.in_pos);
    const RecordSize size = peek_record(in);
    if (size.failure) {
      auto r = fail_with_alert(size.failure->alert, size.failure->reason);
      return total != 0 ? Result<std::size_t>{total} : Result<std::size_t>{r};
    }
    if (size.total == 0) {
      break;
    }
    const OpenedRecord opened = open_record(rec_->suite, &rec_->read, in.first(size.total));
    auto handled =
        opened.failure
            ? Result<void>{fail_with_alert(opened.failure->alert, opened.failure->reason)}
            : on_record(opened.type, in.subspan(kRecordHeaderLen, opened.content_len));
    if (!handled) {
      return total != 0 ? Result<std::size_t>{total} : Result<std::size_t>{fail(handled.error())};
    }
    if (opened.type == kApplicationData) {
      io_.in_pos += kRecordHeaderLen;
      // A record is at most kMaxCiphertextLen (16,640) bytes: both fit in 32 bits.
      plain_left_ = static_cast<std::uint32_t>(opened.content_len);
      plain_skip_ = static_cast<std::uint32_t>(size.total - kRecordHeaderLen - opened.content_len);
      if (plain_left_ == 0) {
        io_.in_pos += std::exchange(plain_skip_, 0);  // §5.4: zero-length data is allowed
      }
    } else {
      io_.in_pos += size.total;
    }
  }
  if (io_.in_pos == io_.in.size()) {
    io_.in.clear();
    io_.in_pos = 0;
  }
  return total;
}

Result<void> Engine::on_record(std::uint8_t type, std::span<const std::uint8_t> content) {
  if (type != kHandshake && !handshake_in_.empty()) {
    // RFC 8446 §5.1: handshake messages must not be interleaved with other record types.
    return fail_with_alert(kUnexpectedMessage, SSL_R_UNEXPECTED_RECORD);
  }
  if (type == kApplicationData) {
    if (rec_->read.seq >= key_update_interval_ && !rec_->key_update_requested && !close_sent_) {
      return send_key_update(true);  // §5.5: the peer's key is worn; ask it to change
    }
    return {};
  }
  if (content.empty()) {
    // §5.1: zero-length fragments are allowed for application data only.
    return fail_with_alert(kUnexpectedMessage, SSL_R_BAD_LENGTH);
  }
  return type == kAlert ? on_alert(content) : on_handshake_bytes(content);
}

Result<void> Engine::on_alert(std::span<const std::uint8_t> content) {
  if (content.size() != 2) {
    return fail_with_alert(kDecodeError, SSL_R_INVALID_ALERT);
  }
  const std::uint8_t description = content[1];
  if (description == kCloseNotify) {
    peer_closed_ = true;  // §6.1: anything after it is ignored
    return {};
  }
  if (description == kUserCanceled) {
    return {};  // §6.1: a warning, normally followed by close_notify
  }
  // §6.2: every other alert is fatal whatever its level; nothing is sent back.
  close_sent_ = true;
  return fail_with(ssl_reason(SSL_AD_REASON_OFFSET + description));
}

Result<void> Engine::on_handshake_bytes(std::span<const std::uint8_t> content) {
  handshake_in_.insert(handshake_in_.end(), content.begin(), content.end());
  std::size_t at = 0;
  while (handshake_in_.size() - at >= 4) {
    const std::span<const std::uint8_t> rest = std::span(handshake_in_).subspan(at);
    const std::size_t len = be(rest.subspan(1), 3);
    if (len > kMaxPostHandshakeMessage) {
      return fail_with_alert(kIllegalParameter, SSL_R_EXCESSIVE_MESSAGE_SIZE);
    }
    if (rest.size() < 4 + len) {
      break;
    }
    HOLDFAST_TRY(on_handshake_message(rest[0], rest.subspan(4, len), rest.size() == 4 + len));
    at += 4 + len;
  }
  handshake_in_.erase(handshake_in_.begin(),
                      handshake_in_.begin() + static_cast<std::ptrdiff_t>(at));
  return {};
}

Result<void> Engine::on_handshake_message(std::uint8_t type, std::span<const std::uint8_t> body,
                                          bool at_record_end) {
  if (type == kNewSessionTicket && !is_server_) {
    // A ticket after take-over cannot be used (OpenSSL 3.0 does not expose the resumption
    // secret, fact 4): validated and dropped.
    return is_well_formed_ticket(body)
               ? Result<void>{}
               : Result<void>{fail_with_alert(kDecodeError, SSL_R_LENGTH_MISMATCH)};
  }
  if (type != kKeyUpdate) {
    // A client's ticket, a CertificateRequest (post-handshake auth was never offered), ...
    return fail_with_alert(kUnexpectedMessage, SSL_R_UNEXPECTED_MESSAGE);
  }
  if (body.size() != 1) {
    return fail_with_alert(kDecodeError, SSL_R_LENGTH_MISMATCH);
  }
  if (body[0] > 1) {
    return fail_with_alert(kIllegalParameter, SSL_R_BAD_KEY_UPDATE);  // §4.6.3
  }
  if (!at_record_end) {
    return fail_with_alert(kUnexpectedMessage, SSL_R_NOT_ON_RECORD_BOUNDARY);  // §5.1
  }
  if (!update_secret(rec_->suite, &rec_->read)) {
    return fail_with(make_error_code(TlsErrc::internal_error));
  }
  rec_->key_update_requested = false;
  if (body[0] == 1 && !close_sent_) {
    return send_key_update(false);  // §4.6.3: answer before our next application data
  }
  return {};
}

}  // namespace holdfast::tls
