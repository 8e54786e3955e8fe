// Shared TLS contexts: holdfast's defaults, certificates, verification, ALPN and the session cache
// hook.
#include "tls/context.h"

#include <algorithm>
#include <cstdlib>
#include <mutex>
#include <string_view>
#include <utility>
#include <vector>

#include <openssl/err.h>
#include <openssl/pem.h>
#include <openssl/ssl.h>
#include <openssl/x509.h>

#include "tls/keylog.h"
#include "tls/openssl_error.h"
#include "tls/session_cache.h"

namespace holdfast::tls {
namespace {

// Origins a client context keeps one resumable session for.
constexpr std::size_t kSessionCacheCapacity = 1024;
constexpr unsigned char kSessionIdContext[] = "holdfast";

int proto_version(TlsVersion v) {
  return v == TlsVersion::tls1_3 ? TLS1_3_VERSION : TLS1_2_VERSION;
}

using CtxPtr = std::unique_ptr<SSL_CTX, decltype(&SSL_CTX_free)>;

Result<std::string> encode_alpn(const std::vector<std::string>& protocols) {
  std::string wire;
  for (const std::string& p : protocols) {
    if (p.empty() || p.size() > 255) {
      return fail(TlsErrc::invalid_alpn);
    }
    wire.push_back(static_cast<char>(p.size()));
    wire += p;
  }
  return wire;
}

Result<CtxPtr> new_base_ctx(bool server, TlsVersion min, TlsVersion max, const std::string& ciphers,
                            const std::string& suites) {
  CtxPtr ctx(SSL_CTX_new(server ? TLS_server_method() : TLS_client_method()), &SSL_CTX_free);
  if (!ctx) {
    return fail(take_error(nullptr, make_error_code(TlsErrc::internal_error)));
  }
  // Compression: CRIME and ~500 KB per connection (incident 000/001 era); renegotiation: refused
  // (a TLS 1.2 peer asking gets a no_renegotiation warning, RFC 5746 does not oblige us to accept).
  SSL_CTX_set_options(ctx.get(), SSL_OP_NO_COMPRESSION | SSL_OP_NO_RENEGOTIATION);
  // RELEASE_BUFFERS drops record buffers when empty; ACCEPT_MOVING_WRITE_BUFFER lets a retried
  // SSL_write come from our queue after it moved (incident 004: writes are never re-issued with
  // other bytes, but the queue's storage may be reallocated in between).
  SSL_CTX_set_mode(ctx.get(), SSL_MODE_RELEASE_BUFFERS | SSL_MODE_ACCEPT_MOVING_WRITE_BUFFER);
  if (SSL_CTX_set_min_proto_version(ctx.get(), proto_version(min)) != 1 ||
      SSL_CTX_set_max_proto_version(ctx.get(), proto_version(std::max(min, max))) != 1) {
    return fail(TlsErrc::internal_error);
  }
  if ((!ciphers.empty() && SSL_CTX_set_cipher_list(ctx.get(), ciphers.c_str()) != 1) ||
      (!suites.empty() && SSL_CTX_set_ciphersuites(ctx.get(), suites.c_str()) != 1)) {
    return fail(TlsErrc::invalid_cipher_list);
  }
  return ctx;
}

// SSL_CTX_use_PrivateKey* already compares the key with the loaded certificate.
TlsErrc key_error() {
  const unsigned long e = ERR_peek_last_error();
  const bool mismatch =
      ERR_GET_LIB(e) == ERR_LIB_X509 && (ERR_GET_REASON(e) == X509_R_KEY_VALUES_MISMATCH ||
                                         ERR_GET_REASON(e) == X509_R_KEY_TYPE_MISMATCH);
  return mismatch ? TlsErrc::private_key_mismatch : TlsErrc::private_key_load_failed;
}

Result<void> load_pem_chain(SSL_CTX* ctx, const std::string& pem) {
  std::unique_ptr<BIO, decltype(&BIO_free)> bio(
      BIO_new_mem_buf(pem.data(), static_cast<int>(pem.size())), &BIO_free);
  X509* leaf = bio ? PEM_read_bio_X509(bio.get(), nullptr, nullptr, nullptr) : nullptr;
  if (leaf == nullptr) {
    return fail(TlsErrc::certificate_load_failed);
  }
  const int used = SSL_CTX_use_certificate(ctx, leaf);
  X509_free(leaf);
  if (used != 1) {
    return fail(TlsErrc::certificate_load_failed);
  }
  while (X509* extra = PEM_read_bio_X509(bio.get(), nullptr, nullptr, nullptr)) {
    if (SSL_CTX_add0_chain_cert(ctx, extra) != 1) {  // takes ownership on success only
      X509_free(extra);
      return fail(TlsErrc::certificate_load_failed);
    }
  }
  return {};  // the loop ends on "no start line": that queue entry is cleared by the caller's guard
}

Result<void> load_pem_key(SSL_CTX* ctx, const std::string& pem) {
  std::unique_ptr<BIO, decltype(&BIO_free)> bio(
      BIO_new_mem_buf(pem.data(), static_cast<int>(pem.size())), &BIO_free);
  EVP_PKEY* key = bio ? PEM_read_bio_PrivateKey(bio.get(), nullptr, nullptr, nullptr) : nullptr;
  if (key == nullptr) {
    return fail(TlsErrc::private_key_load_failed);
  }
  const int used = SSL_CTX_use_PrivateKey(ctx, key);
  EVP_PKEY_free(key);
  return used == 1 ? Result<void>{} : fail(key_error());
}

// Certificate + key from files (preferred) or PEM text; both optional for clients (mutual TLS).
Result<void> load_identity(SSL_CTX* ctx, const std::string& cert_file, const std::string& key_file,
                           const std::string& cert_pem, const std::string& key_pem) {
  if (!cert_file.empty()) {
    if (SSL_CTX_use_certificate_chain_file(ctx, cert_file.c_str()) != 1) {
      return fail(TlsErrc::certificate_load_failed);
    }
  } else if (!cert_pem.empty()) {
    HOLDFAST_TRY(load_pem_chain(ctx, cert_pem));
  }
  if (!key_file.empty()) {
    if (SSL_CTX_use_PrivateKey_file(ctx, key_file.c_str(), SSL_FILETYPE_PEM) != 1) {
      return fail(key_error());
    }
  } else if (!key_pem.empty()) {
    HOLDFAST_TRY(load_pem_key(ctx, key_pem));
  }
  const bool has_cert = !cert_file.empty() || !cert_pem.empty();
  const bool has_key = !key_file.empty() || !key_pem.empty();
  if (has_cert != has_key) {
    return fail(has_cert ? TlsErrc::private_key_load_failed : TlsErrc::certificate_load_failed);
  }
  if (has_cert && SSL_CTX_check_private_key(ctx) != 1) {
    return fail(TlsErrc::private_key_mismatch);
  }
  return {};
}

Result<void> load_trust(SSL_CTX* ctx, const ClientTlsOptions& opts) {
  if (opts.insecure_skip_verify) {
    SSL_CTX_set_verify(ctx, SSL_VERIFY_NONE, nullptr);
    return {};
  }
  SSL_CTX_set_verify(ctx, SSL_VERIFY_PEER, nullptr);
  if (opts.ca_file.empty() && opts.ca_path.empty()) {
    X509_STORE* store = system_ca_store();
    if (store == nullptr) {
      return fail(TlsErrc::ca_load_failed);
    }
    SSL_CTX_set1_cert_store(ctx, store);  // shared by reference: never parsed again
    return {};
  }
  const char* file = opts.ca_file.empty() ? nullptr : opts.ca_file.c_str();
  const char* path = opts.ca_path.empty() ? nullptr : opts.ca_path.c_str();
  if (SSL_CTX_load_verify_locations(ctx, file, path) != 1) {
    return fail(TlsErrc::ca_load_failed);
  }
  return {};
}

// HOLDFAST_TLS_RECORD_TAKEOVER=0 in the environment turns the take-over off process-wide, for
// comparisons and debugging of programs that do not expose the option (holdfast bench, serve).
bool takeover_allowed_by_env() {
  static const bool allowed = [] {
    const char* v = std::getenv("HOLDFAST_TLS_RECORD_TAKEOVER");
    return v == nullptr || std::string_view(v) != "0";
  }();
  return allowed;
}

// SSL_CTX_sess_set_new_cb: a client learned a resumable session (TLS 1.2: at the end of the
// handshake; TLS 1.3: one per NewSessionTicket, after it, RFC 8446 §4.6.1). Returning 1 keeps the
// reference, which the cache then owns.
int on_new_session(SSL* ssl, SSL_SESSION* session) {
  const auto* key = static_cast<const std::string*>(SSL_get_app_data(ssl));
  const auto* owner = static_cast<const Context*>(SSL_CTX_get_app_data(SSL_get_SSL_CTX(ssl)));
  if (key == nullptr || key->empty() || owner == nullptr || owner->session_cache() == nullptr) {
    return 0;
  }
  owner->session_cache()->put(*key, session);
  return 1;
}

// ALPN, RFC 7301 §3.2: the server picks; in our (server) preference order. No overlap: continue
// without ALPN (SSL_TLSEXT_ERR_NOACK) so HTTP/1.1 clients offering something else still connect.
int on_alpn_select(SSL* /*ssl*/, const unsigned char** out, unsigned char* out_len,
                   const unsigned char* in, unsigned int in_len, void* arg) {
  const auto* server_wire = static_cast<const std::string*>(arg);
  unsigned char* selected = nullptr;
  const int r = SSL_select_next_proto(&selected, out_len,
                                      reinterpret_cast<const unsigned char*>(server_wire->data()),
                                      static_cast<unsigned int>(server_wire->size()), in, in_len);
  if (r != OPENSSL_NPN_NEGOTIATED) {
    return SSL_TLSEXT_ERR_NOACK;
  }
  *out = selected;
  return SSL_TLSEXT_ERR_OK;
}

}  // namespace

Context::Context(ssl_ctx_st* ctx, bool server, bool verify_peer)
    : ctx_(ctx), server_(server), verify_peer_(verify_peer) {
  SSL_CTX_set_app_data(ctx_, this);
}

Context::~Context() { SSL_CTX_free(ctx_); }

Result<std::shared_ptr<const Context>> Context::client(const ClientTlsOptions& opts,
                                                       TlsVersion max_version) {
  init_once();
  ErrorQueueGuard guard;
  auto ctx = new_base_ctx(false, opts.min_version, max_version, opts.ciphers, opts.ciphersuites);
  HOLDFAST_TRY(ctx);
  SSL_CTX* raw = ctx->get();
  HOLDFAST_TRY(load_trust(raw, opts));
  HOLDFAST_TRY(load_identity(raw, opts.client_cert_file, opts.client_key_file, {}, {}));
  auto wire = encode_alpn(opts.alpn);
  HOLDFAST_TRY(wire);
  if (!wire->empty() &&
      SSL_CTX_set_alpn_protos(raw, reinterpret_cast<const unsigned char*>(wire->data()),
                              static_cast<unsigned int>(wire->size())) != 0) {  // 0 is success here
    return fail(TlsErrc::internal_error);
  }
  install_keylog_callback(raw);
  std::shared_ptr<Context> out(new Context(ctx->release(), false, !opts.insecure_skip_verify));
  out->record_takeover_ = opts.record_takeover && takeover_allowed_by_env();
  out->alpn_wire_ = std::move(*wire);
  if (opts.session_resumption) {
    out->sessions_ = std::make_unique<SessionCache>(kSessionCacheCapacity);
    // NO_INTERNAL_STORE: OpenSSL's own client cache is keyed by nothing useful to us; ours is per
    // origin.
    SSL_CTX_set_session_cache_mode(raw, SSL_SESS_CACHE_CLIENT | SSL_SESS_CACHE_NO_INTERNAL_STORE);
    SSL_CTX_sess_set_new_cb(raw, on_new_session);
  } else {
    SSL_CTX_set_session_cache_mode(raw, SSL_SESS_CACHE_OFF);
  }
  return std::shared_ptr<const Context>(std::move(out));
}

Result<std::shared_ptr<const Context>> Context::server(const ServerTlsOptions& opts,
                                                       TlsVersion max_version) {
  init_once();
  ErrorQueueGuard guard;
  auto ctx = new_base_ctx(true, opts.min_version, max_version, opts.ciphers, opts.ciphersuites);
  HOLDFAST_TRY(ctx);
  SSL_CTX* raw = ctx->get();
  if (opts.cert_file.empty() && opts.cert_pem.empty()) {
    return fail(TlsErrc::certificate_load_failed);
  }
  HOLDFAST_TRY(load_identity(raw, opts.cert_file, opts.key_file, opts.cert_pem, opts.key_pem));
  auto wire = encode_alpn(opts.alpn);
  HOLDFAST_TRY(wire);
  SSL_CTX_set_options(raw, SSL_OP_CIPHER_SERVER_PREFERENCE);
  SSL_CTX_set_session_id_context(raw, kSessionIdContext, sizeof kSessionIdContext - 1);
  // Stateless tickets only: a server-side cache would keep ~2 KB per closed connection for hours
  // (notes/openssl-memory.md fact 3). Zero tickets: no resumption at all, in 1.2 or 1.3.
  SSL_CTX_set_session_cache_mode(raw, SSL_SESS_CACHE_OFF);
  SSL_CTX_set_num_tickets(raw, static_cast<std::size_t>(std::max(opts.session_tickets, 0)));
  if (opts.session_tickets <= 0) {
    SSL_CTX_set_options(raw, SSL_OP_NO_TICKET);
  }
  install_keylog_callback(raw);
  std::shared_ptr<Context> out(new Context(ctx->release(), true, false));
  out->record_takeover_ = opts.record_takeover && takeover_allowed_by_env();
  out->alpn_wire_ = std::move(*wire);
  if (!out->alpn_wire_.empty()) {
    SSL_CTX_set_alpn_select_cb(raw, on_alpn_select, &out->alpn_wire_);
  }
  return std::shared_ptr<const Context>(std::move(out));
}

Result<std::shared_ptr<const Context>> Context::shared_client(const ClientTlsOptions& opts) {
  static std::mutex mu;
  static std::vector<std::pair<ClientTlsOptions, std::shared_ptr<const Context>>> contexts;
  std::lock_guard lock(mu);
  for (const auto& [options, context] : contexts) {
    if (options == opts) {
      return context;
    }
  }
  auto made = client(opts);
  HOLDFAST_TRY(made);
  contexts.emplace_back(opts, *made);
  return made;
}

}  // namespace holdfast::tls
