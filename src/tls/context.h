// Private: shared immutable TLS contexts (one SSL_CTX per distinct options) and process-wide TLS
// init.
#pragma once

#include <cstddef>
#include <memory>
#include <string>
#include <string_view>

#include "holdfast/result.h"
#include "holdfast/tls_options.h"

struct ssl_ctx_st;
struct x509_store_st;
struct evp_cipher_st;

namespace holdfast::tls {

class SessionCache;

/// One OpenSSL SSL_CTX with holdfast's defaults applied: TLS 1.2 minimum, no compression, no
/// renegotiation, SSL_MODE_RELEASE_BUFFERS, peer verification on (clients) unless
/// insecure_skip_verify. Immutable after creation and shared by every connection made with the same
/// options, on any thread; only the client's session cache inside changes (it has its own mutex).
/// Always held by std::shared_ptr: each Engine keeps its Context alive.
class Context {
 public:
  /// A client context. Verification uses `opts.ca_file`/`opts.ca_path`, or, when both are empty,
  /// the process-wide system CA store (parsed once, shared by reference). `max_version` caps the
  /// protocol (not a public option: tests and interop use it to force TLS 1.2). Errors:
  /// TlsErrc::ca_load_failed, certificate_load_failed, private_key_load_failed,
  /// private_key_mismatch (client certificate), invalid_cipher_list, invalid_alpn.
  static Result<std::shared_ptr<const Context>> client(const ClientTlsOptions& opts,
                                                       TlsVersion max_version = TlsVersion::tls1_3);
  /// A server context with the certificate chain and key from files or PEM text. ALPN: the first of
  /// the server's `opts.alpn` that the client offers; when none matches, the handshake continues
  /// without ALPN (the client then speaks HTTP/1.1), rather than failing with
  /// no_application_protocol (RFC 7301 §3.2 allows either). Sends `opts.session_tickets` TLS 1.3
  /// tickets and keeps no server-side session cache (tickets are stateless). Errors as for
  /// client().
  static Result<std::shared_ptr<const Context>> server(const ServerTlsOptions& opts,
                                                       TlsVersion max_version = TlsVersion::tls1_3);
  /// The process-wide context for `opts`: equal options give the same Context (and so one session
  /// cache and one CA store). Entries are kept for the life of the process. Thread-safe.
  static Result<std::shared_ptr<const Context>> shared_client(const ClientTlsOptions& opts);

  ~Context();
  Context(const Context&) = delete;
  Context& operator=(const Context&) = delete;

  /// True for a server context.
  [[nodiscard]] bool is_server() const { return server_; }
  /// True when peers are verified (client without insecure_skip_verify).
  [[nodiscard]] bool verifies_peer() const { return verify_peer_; }
  /// The OpenSSL context, for Engine only. Valid while this Context lives.
  [[nodiscard]] ssl_ctx_st* native() const { return ctx_; }
  /// True when TLS 1.3 connections hand their records to holdfast's own layer after the handshake
  /// (options' record_takeover).
  [[nodiscard]] bool takes_over_records() const { return record_takeover_; }
  /// The client's session cache, or null (server, or session_resumption off).
  [[nodiscard]] SessionCache* session_cache() const { return sessions_.get(); }
  /// The ALPN protocols offered (client) or accepted (server), in wire format (RFC 7301 §3.1): a
  /// negotiated protocol is always one of them, so a taken-over engine keeps only its place here.
  [[nodiscard]] std::string_view alpn_wire() const { return alpn_wire_; }

 private:
  Context(ssl_ctx_st* ctx, bool server, bool verify_peer);

  ssl_ctx_st* ctx_;
  bool server_;
  bool verify_peer_;
  bool record_takeover_ = true;
  std::unique_ptr<SessionCache> sessions_;
  std::string alpn_wire_;  // its ALPN list in wire format; the server's select callback reads it
};

/// Eager one-time process setup: OpenSSL init with error strings, the random generator seeded
/// (one RAND_bytes), the AEAD ciphers fetched once and kept, the system CA store parsed. Idempotent
/// and thread-safe; Context::client/server call it too.
void init_once();

/// The AEAD cipher fetched once per process by init_once(): 0 AES-128-GCM, 1 AES-256-GCM,
/// 2 ChaCha20-Poly1305 (the order of AeadSuite); null for another index or if the fetch failed.
/// Never freed. Thread-safe.
evp_cipher_st* fetched_aead_cipher(int index);

/// How many times the system CA store was parsed in this process (stays 1 however many clients,
/// contexts and connections there are). Thread-safe.
std::size_t system_ca_store_loads();

/// The process-wide system CA store (OpenSSL's default file and directory), parsed on first use and
/// never freed; contexts share it with SSL_CTX_set1_cert_store. Null if it could not be created.
/// Thread-safe (X509_STORE has its own lock for the directory lookups it does lazily).
x509_store_st* system_ca_store();

}  // namespace holdfast::tls
