// The "tls" error category: messages built from the encoded value with OpenSSL's own strings.
#include <string>

#include <openssl/err.h>
#include <openssl/ssl.h>
#include <openssl/x509.h>

#include "tls/openssl_error.h"

namespace holdfast::tls {
namespace {

const char* own_message(TlsErrc e) {
  switch (e) {
    case TlsErrc::handshake_failed: return "TLS handshake failed";
    case TlsErrc::peer_closed_without_close_notify:
      return "connection closed without TLS close_notify (truncated)";
    case TlsErrc::handshake_truncated: return "connection closed during the TLS handshake";
    case TlsErrc::closed: return "TLS connection already closed";
    case TlsErrc::certificate_load_failed:
      return "could not load the certificate (missing file or not PEM)";
    case TlsErrc::private_key_load_failed:
      return "could not load the private key (missing file or not PEM)";
    case TlsErrc::private_key_mismatch: return "the private key does not match the certificate";
    case TlsErrc::ca_load_failed: return "could not load the trusted CA certificates";
    case TlsErrc::invalid_cipher_list: return "the cipher list selects no usable cipher";
    case TlsErrc::invalid_alpn:
      return "invalid ALPN protocol name (empty or longer than 255 bytes)";
    case TlsErrc::invalid_server_name: return "invalid TLS server name";
    case TlsErrc::certificate_generation_failed: return "could not generate a key or certificate";
    case TlsErrc::internal_error: return "internal TLS library error";
  }
  return nullptr;
}

std::string openssl_message(int value) {
  const int lib = (value >> 20) & 0xFF;
  const int reason = value & 0xFFFFF;
  // OpenSSL 3.0 loads its error strings on first init; make sure they are there even if no
  // context was ever made in this process (e.g. a message printed for a deserialized code).
  OPENSSL_init_ssl(OPENSSL_INIT_LOAD_SSL_STRINGS | OPENSSL_INIT_LOAD_CRYPTO_STRINGS, nullptr);
  const char* text = ERR_reason_error_string(ERR_PACK(lib, 0, reason));
  if (text != nullptr) {
    return text;
  }
  return "OpenSSL error (library " + std::to_string(lib) + ", reason " + std::to_string(reason) +
         ")";
}

class TlsCategory final : public std::error_category {
 public:
  const char* name() const noexcept override { return "tls"; }

  std::string message(int value) const override {
    if (value >= kOpensslBase) {
      return openssl_message(value);
    }
    if (value >= kVerifyBase) {
      return std::string("certificate verify failed: ") +
             X509_verify_cert_error_string(value - kVerifyBase);
    }
    if (const char* text = own_message(static_cast<TlsErrc>(value))) {
      return text;
    }
    return "unknown TLS error " + std::to_string(value);
  }
};

}  // namespace

const std::error_category& tls_category() noexcept {
  static const TlsCategory category;
  return category;
}

std::error_code make_error_code(TlsErrc e) noexcept {
  return {static_cast<int>(e), tls_category()};
}

bool is_certificate_error(std::error_code ec) {
  if (ec.category() != tls_category()) {
    return false;
  }
  if (ec.value() >= kVerifyBase && ec.value() < kOpensslBase) {
    return true;
  }
  // A verify failure whose detailed result was lost still belongs to the family.
  return ec == openssl_error_code(ERR_PACK(ERR_LIB_SSL, 0, SSL_R_CERTIFICATE_VERIFY_FAILED));
}

std::error_code verify_error_code(long x509_verify_result) noexcept {
  return {kVerifyBase + static_cast<int>(x509_verify_result & 0xFFFF), tls_category()};
}

std::error_code openssl_error_code(unsigned long packed) noexcept {
  const int lib = ERR_GET_LIB(packed);
  const int reason = ERR_GET_REASON(packed);
  if (ERR_SYSTEM_ERROR(packed) || lib == ERR_LIB_SYS) {
    return {reason, std::system_category()};
  }
  return {kOpensslBase | (lib & 0xFF) << 20 | (reason & 0xFFFFF), tls_category()};
}

std::error_code take_error(const ssl_st* ssl, std::error_code fallback) {
  const unsigned long first = ERR_get_error();
  bool verify_failed = false;
  for (unsigned long e = first; e != 0; e = ERR_get_error()) {
    if (ERR_GET_LIB(e) == ERR_LIB_SSL && ERR_GET_REASON(e) == SSL_R_CERTIFICATE_VERIFY_FAILED) {
      verify_failed = true;
    }
  }
  if (verify_failed && ssl != nullptr) {
    const long result = SSL_get_verify_result(ssl);
    if (result != X509_V_OK) {
      return verify_error_code(result);
    }
  }
  return first != 0 ? openssl_error_code(first) : fallback;
}

ErrorQueueGuard::ErrorQueueGuard() noexcept { ERR_clear_error(); }
ErrorQueueGuard::~ErrorQueueGuard() { ERR_clear_error(); }

}  // namespace holdfast::tls
