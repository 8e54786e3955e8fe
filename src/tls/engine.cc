// The TLS engine: an OpenSSL SSL over the engine's own byte queues, driven by feed/read/write.
#include "tls/engine.h"

#include <arpa/inet.h>

#include <utility>

#include <openssl/err.h>
#include <openssl/ssl.h>
#include <openssl/x509v3.h>

#include "tls/openssl_error.h"
#include "tls/session_cache.h"

namespace holdfast::tls {
namespace {

// "[::1]" -> "::1"; an IP literal is verified as an address, never sent as SNI (RFC 6066 §3).
bool is_ip_literal(std::string_view name, std::string* bare) {
  if (name.size() >= 2 && name.front() == '[' && name.back() == ']') {
    name = name.substr(1, name.size() - 2);
  }
  *bare = std::string(name);
  unsigned char buf[16];
  return inet_pton(AF_INET, bare->c_str(), buf) == 1 ||
         inet_pton(AF_INET6, bare->c_str(), buf) == 1;
}

Result<void> set_server_name(SSL* ssl, std::string_view server_name, bool verify) {
  if (server_name.empty()) {
    // Verifying without a name would accept any trusted certificate: refuse rather than guess.
    return verify ? Result<void>{fail(TlsErrc::invalid_server_name)} : Result<void>{};
  }
  std::string name;
  if (is_ip_literal(server_name, &name)) {
    if (verify && X509_VERIFY_PARAM_set1_ip_asc(SSL_get0_param(ssl), name.c_str()) != 1) {
      return fail(TlsErrc::invalid_server_name);
    }
    return {};
  }
  if (SSL_set_tlsext_host_name(ssl, name.c_str()) != 1) {
    return fail(TlsErrc::invalid_server_name);
  }
  if (verify) {
    SSL_set_hostflags(ssl, X509_CHECK_FLAG_NO_PARTIAL_WILDCARDS);
    if (SSL_set1_host(ssl, name.c_str()) != 1) {
      return fail(TlsErrc::invalid_server_name);
    }
  }
  return {};
}

}  // namespace

Engine::Engine(std::shared_ptr<const Context> ctx, ssl_st* ssl) : ctx_(std::move(ctx)), ssl_(ssl) {
  if (ssl_ == nullptr) {
    return;  // taken_over_for_testing(): the record layer alone
  }
  BIO* bio = new_queue_bio(&io_);
  SSL_set_bio(ssl_, bio,
              bio);  // one reference, used for both directions; null leaves ssl_ unusable
}

Engine::~Engine() {
  // openssl-memory.md fact 6: without a recorded shutdown, SSL_free marks the session (and the copy
  // in our cache) not resumable. A connection that failed fatally should not be resumed anyway.
  drop_record_state();  // detaches from the SSL first, so before SSL_free
  if (ssl_ != nullptr) {
    if (handshake_done_ && !failed_) {
      SSL_set_shutdown(ssl_, SSL_SENT_SHUTDOWN | SSL_RECEIVED_SHUTDOWN);
    }
    SSL_free(ssl_);
    ERR_clear_error();
  }
}

Result<std::unique_ptr<Engine>> Engine::client(std::shared_ptr<const Context> ctx,
                                               std::string_view server_name,
                                               std::string_view session_key) {
  auto created = create(std::move(ctx), /*server=*/false);
  if (!created) {
    return created;
  }
  std::unique_ptr<Engine> engine = std::move(*created);
  SSL* ssl = engine->ssl_;
  ErrorQueueGuard guard;
  SSL_set_connect_state(ssl);
  HOLDFAST_TRY(set_server_name(ssl, server_name, engine->ctx_->verifies_peer()));
  if (!session_key.empty()) {
    engine->session_key_ = std::make_unique<std::string>(session_key);
    SSL_set_app_data(ssl, engine->session_key_.get());  // read by the session-cache callback
  }
  if (SessionCache* cache = engine->ctx_->session_cache();
      cache != nullptr && !session_key.empty()) {
    if (SSL_SESSION* session = cache->get1(session_key)) {
      SSL_set_session(ssl, session);  // takes its own reference
      SSL_SESSION_free(session);
    }
    // A client that stores sessions takes over only once the server's tickets began to arrive.
    engine->wants_tickets_ = true;
  }
  return engine;
}

Result<std::unique_ptr<Engine>> Engine::server(std::shared_ptr<const Context> ctx) {
  auto created = create(std::move(ctx), /*server=*/true);
  if (created) {
    SSL_set_accept_state((*created)->ssl_);
  }
  return created;
}

Result<std::unique_ptr<Engine>> Engine::create(std::shared_ptr<const Context> ctx, bool server) {
  if (!ctx || ctx->is_server() != server) {
    return fail(TlsErrc::internal_error);
  }
  ErrorQueueGuard guard;
  SSL* ssl = SSL_new(ctx->native());
  if (ssl == nullptr) {
    return fail(TlsErrc::internal_error);
  }
  std::unique_ptr<Engine> engine(new Engine(std::move(ctx), ssl));
  if (SSL_get_rbio(ssl) == nullptr) {
    return fail(TlsErrc::internal_error);
  }
  engine->is_server_ = server;
  if (engine->ctx_->takes_over_records()) {
    engine->prepare_takeover();
  }
  return engine;
}

Unexpected Engine::fail_with(std::error_code ec) {
  failed_ = ec;
  return fail(ec);
}

Result<void> Engine::start() {
  if (failed_) {
    return fail(failed_);
  }
  return handshake_done_ ? Result<void>{} : drive_handshake();
}

Result<void> Engine::drive_handshake() {
  ErrorQueueGuard guard;
  const int r = SSL_do_handshake(ssl_);
  if (r == 1) {
    handshake_done_ = true;
    return after_handshake();
  }
  const int e = SSL_get_error(ssl_, r);
  if (e == SSL_ERROR_WANT_READ || e == SSL_ERROR_WANT_WRITE) {
    return {};
  }
  // SSL_ERROR_SYSCALL with an empty queue can only be our BIO's EOF: the peer went away
  // mid-handshake.
  return fail_with(
      take_error(ssl_, make_error_code(e == SSL_ERROR_SYSCALL ? TlsErrc::handshake_truncated
                                                              : TlsErrc::handshake_failed)));
}

Result<void> Engine::after_handshake() {
  if (is_server_ || !wants_tickets_) {
    maybe_take_over();  // a client waiting for tickets tries again in read()
  }
  HOLDFAST_TRY(flush_plaintext());
  if (close_requested_) {
    return send_close_notify();
  }
  return {};
}

Result<void> Engine::feed(std::span<const std::uint8_t> ciphertext) {
  if (failed_) {
    return fail(failed_);
  }
  io_.push_input(ciphertext);
  return handshake_done_ ? Result<void>{} : drive_handshake();
}

Result<std::size_t> Engine::read(std::span<std::uint8_t> out) {
  if (failed_) {
    return fail(failed_);
  }
  if (!handshake_done_) {
    HOLDFAST_TRY(drive_handshake());
    if (!handshake_done_) {
      return std::size_t{0};
    }
  }
  if (is_record_taken_over()) {
    return read_records(out);
  }
  return read_with_ssl(out);
}

Result<std::size_t> Engine::read_with_ssl(std::span<std::uint8_t> out) {
  std::size_t total = 0;
  // Bounded: each round lets OpenSSL read at least one more record, or ends.
  for (int round = 0; round < 1024; ++round) {
    auto n = ssl_read_some(out.subspan(total));
    if (!n) {
      return total != 0 ? Result<std::size_t>{total} : n;
    }
    total += *n;
    if (failed_ || peer_closed_ || total == out.size()) {
      return total;
    }
    maybe_take_over();
    if (is_record_taken_over()) {
      auto more = read_records(out.subspan(total));
      if (!more) {
        return total != 0 ? Result<std::size_t>{total} : more;
      }
      return total + *more;
    }
    if (io_.read_limit == UINT64_MAX || io_.input_left() == 0) {
      return total;
    }
    io_.read_limit = UINT64_MAX;  // not at an idle point yet: let OpenSSL read the next record
  }
  return total;
}

Result<std::size_t> Engine::ssl_read_some(std::span<std::uint8_t> out) {
  ErrorQueueGuard guard;
  std::size_t total = 0;
  while (total < out.size() && !peer_closed_) {
    std::size_t n = 0;
    const int r = SSL_read_ex(ssl_, out.data() + total, out.size() - total, &n);
    if (r == 1) {
      total += n;
      continue;
    }
    const int e = SSL_get_error(ssl_, r);
    if (e == SSL_ERROR_WANT_READ || e == SSL_ERROR_WANT_WRITE) {
      break;
    }
    if (e == SSL_ERROR_ZERO_RETURN) {
      peer_closed_ = true;  // RFC 8446 §6.1: close_notify; nothing more will be read
      break;
    }
    failed_ = take_error(ssl_, make_error_code(TlsErrc::peer_closed_without_close_notify));
    if (total == 0) {
      return fail(failed_);
    }
    break;  // hand out what was decrypted before the error; the next call reports it
  }
  return total;
}

Result<void> Engine::write(std::span<const std::uint8_t> plaintext) {
  if (failed_) {
    return fail(failed_);
  }
  if (close_requested_) {
    return fail(TlsErrc::closed);
  }
  if (plaintext.empty()) {
    return {};
  }
  if (!handshake_done_ || plain_out_pos_ < plain_out_.size()) {
    plain_out_.insert(plain_out_.end(), plaintext.begin(), plaintext.end());
    return handshake_done_ ? flush_plaintext() : Result<void>{};
  }
  if (is_record_taken_over()) {
    return write_records(plaintext);
  }
  // Fast path: encrypt straight from the caller's bytes. Our BIO accepts every write whole, so
  // SSL_write_ex completes; anything it did not take is copied and retried from the queue.
  ErrorQueueGuard guard;
  std::size_t n = 0;
  const int r = SSL_write_ex(ssl_, plaintext.data(), plaintext.size(), &n);
  if (r == 1 && n == plaintext.size()) {
    return {};
  }
  const int e = SSL_get_error(ssl_, r);
  if (e != SSL_ERROR_WANT_READ && e != SSL_ERROR_WANT_WRITE) {
    return fail_with(take_error(ssl_, make_error_code(TlsErrc::internal_error)));
  }
  plain_out_.assign(plaintext.begin() + static_cast<std::ptrdiff_t>(r == 1 ? n : 0),
                    plaintext.end());
  plain_out_pos_ = 0;
  return {};
}

Result<void> Engine::flush_plaintext() {
  if (is_record_taken_over()) {
    auto r = write_records(std::span(plain_out_).subspan(plain_out_pos_));
    plain_out_.clear();
    plain_out_pos_ = 0;
    return r;
  }
  ErrorQueueGuard guard;
  while (plain_out_pos_ < plain_out_.size()) {
    std::size_t n = 0;
    const int r = SSL_write_ex(ssl_, plain_out_.data() + plain_out_pos_,
                               plain_out_.size() - plain_out_pos_, &n);
    if (r == 1) {
      plain_out_pos_ += n;
      continue;
    }
    const int e = SSL_get_error(ssl_, r);
    if (e == SSL_ERROR_WANT_READ || e == SSL_ERROR_WANT_WRITE) {
      return {};  // retried with the same bytes (ACCEPT_MOVING_WRITE_BUFFER) on the next call
    }
    return fail_with(take_error(ssl_, make_error_code(TlsErrc::internal_error)));
  }
  plain_out_.clear();
  plain_out_pos_ = 0;
  return {};
}

Result<void> Engine::close() {
  if (failed_) {
    return fail(failed_);
  }
  if (close_requested_) {
    return {};
  }
  close_requested_ = true;
  // Before the handshake completes there is no session to close politely; the queued plaintext
  // still goes out first, then close_notify (after_handshake()).
  return handshake_done_ && plain_out_pos_ == plain_out_.size() ? send_close_notify()
                                                                : Result<void>{};
}

Result<void> Engine::send_close_notify() {
  if (close_sent_) {
    return {};
  }
  close_sent_ = true;
  if (is_record_taken_over()) {
    static constexpr std::uint8_t kCloseNotifyAlert[] = {1, kCloseNotify};  // RFC 8446 §6.1
    return seal(kAlert, kCloseNotifyAlert);
  }
  ErrorQueueGuard guard;
  const int r = SSL_shutdown(ssl_);  // 0: sent, peer's not yet seen; 1: both done
  if (r >= 0) {
    return {};
  }
  const int e = SSL_get_error(ssl_, r);
  if (e == SSL_ERROR_WANT_READ || e == SSL_ERROR_WANT_WRITE) {
    return {};
  }
  return fail_with(take_error(ssl_, make_error_code(TlsErrc::internal_error)));
}

bool Engine::has_buffered_plaintext() const {
  if (ssl_ == nullptr) {
    return plain_left_ > 0 || has_whole_record();
  }
  return io_.input_left() != 0 || SSL_pending(ssl_) > 0;
}

std::string_view Engine::alpn() const {
  if (ssl_ == nullptr) {
    return ctx_ == nullptr ? std::string_view{} : ctx_->alpn_wire().substr(alpn_offset_, alpn_len_);
  }
  const unsigned char* data = nullptr;
  unsigned int len = 0;
  SSL_get0_alpn_selected(ssl_, &data, &len);
  return data == nullptr ? std::string_view{}
                         : std::string_view(reinterpret_cast<const char*>(data), len);
}

std::string_view Engine::version() const {
  if (ssl_ == nullptr) {
    return "TLSv1.3";
  }
  return handshake_done_ ? SSL_get_version(ssl_) : "";
}

std::string_view Engine::cipher() const {
  if (ssl_ == nullptr) {
    return rec_ == nullptr ? std::string_view{} : suite_name(rec_->suite);
  }
  const SSL_CIPHER* c = handshake_done_ ? SSL_get_current_cipher(ssl_) : nullptr;
  return c == nullptr ? std::string_view{} : SSL_CIPHER_get_name(c);
}

bool Engine::is_session_reused() const {
  return ssl_ == nullptr ? session_reused_ : SSL_session_reused(ssl_) == 1;
}

std::string Engine::peer_subject() const {
  if (ssl_ == nullptr) {
    return peer_subject_ ? std::string(peer_subject_.get()) : std::string{};
  }
  const X509* cert = SSL_get0_peer_certificate(ssl_);
  if (cert == nullptr) {
    return {};
  }
  std::unique_ptr<BIO, decltype(&BIO_free)> bio(BIO_new(BIO_s_mem()), &BIO_free);
  if (!bio || X509_NAME_print_ex(bio.get(), X509_get_subject_name(cert), 0, XN_FLAG_RFC2253) < 0) {
    ERR_clear_error();
    return {};
  }
  char* data = nullptr;
  const long len = BIO_get_mem_data(bio.get(), &data);
  return std::string(data, static_cast<std::size_t>(len));
}

void Engine::release_buffers() {
  if (ssl_ == nullptr) {
    if (plain_left_ == 0 && handshake_in_.empty() && plain_out_pos_ == plain_out_.size() &&
        io_.release()) {
      std::vector<std::uint8_t>().swap(plain_out_);
      std::vector<std::uint8_t>().swap(handshake_in_);
      plain_out_pos_ = 0;
    }
    return;
  }
  if (plain_out_pos_ < plain_out_.size() || SSL_pending(ssl_) > 0 || !io_.release()) {
    return;
  }
  std::vector<std::uint8_t>().swap(plain_out_);
  plain_out_pos_ = 0;
  // openssl-memory.md fact 1: RELEASE_BUFFERS alone leaves a TLS 1.3 client's 16.6 KB write buffer.
  SSL_free_buffers(ssl_);  // 0 = OpenSSL still holds a partial record: it keeps its buffers
}

std::error_code Engine::on_transport_eof() {
  io_.eof = true;
  if (failed_) {
    return failed_;
  }
  if (peer_closed_ || close_sent_) {
    return {};  // a clean close, or we closed first (many servers never answer close_notify)
  }
  return make_error_code(handshake_done_ ? TlsErrc::peer_closed_without_close_notify
                                         : TlsErrc::handshake_truncated);
}

}  // namespace holdfast::tls
