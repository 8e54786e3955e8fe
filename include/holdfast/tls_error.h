// The TLS error domain: certificate verification results, OpenSSL reasons and holdfast's own TLS
// errors.
#pragma once

#include <system_error>

namespace holdfast::tls {

/// holdfast's own TLS error values. A tls_category() code holds either one of these, or an encoded
/// certificate verification result (message "certificate verify failed: <X509 reason>"), or an
/// encoded OpenSSL library/reason pair (message: OpenSSL's reason string, e.g. "wrong version
/// number", "tlsv1 alert protocol version", "unexpected eof while reading"). Compare codes with
/// `ec == TlsErrc::x`; use is_certificate_error() for the verification family.
enum class TlsErrc {
  // 0 is reserved for success.
  handshake_failed = 1,              ///< the handshake failed with no more specific cause
  peer_closed_without_close_notify,  ///< transport EOF after the handshake with no close_notify
  handshake_truncated,               ///< transport EOF in the middle of the handshake
  closed,                            ///< write after close(), or on a connection the peer closed
  certificate_load_failed,           ///< the certificate (file or PEM) could not be loaded
  private_key_load_failed,           ///< the private key (file or PEM) could not be loaded
  private_key_mismatch,              ///< the private key does not belong to the certificate
  ca_load_failed,                 ///< the CA file, CA path or system CA store could not be loaded
  invalid_cipher_list,            ///< `ciphers` or `ciphersuites` selects nothing usable
  invalid_alpn,                   ///< an ALPN protocol name is empty or longer than 255 bytes
  invalid_server_name,            ///< the server name is empty or not usable for SNI/verification
  certificate_generation_failed,  ///< generating a key or certificate failed
  internal_error,                 ///< OpenSSL failed without telling why (out of memory, ...)
};

/// The category of every TLS error ("tls"). message() needs no stored strings: the value encodes
/// the cause (see TlsErrc). Thread-safe.
const std::error_category& tls_category() noexcept;

/// Makes an error_code of tls_category() from one of holdfast's own values.
std::error_code make_error_code(TlsErrc e) noexcept;

/// True for errors of the peer-certificate verification family (untrusted, self-signed, expired,
/// host name or IP mismatch, ...): the CLI maps these to its own exit code. False for anything
/// else, including codes of other categories.
bool is_certificate_error(std::error_code ec);

}  // namespace holdfast::tls

template <>
struct std::is_error_code_enum<holdfast::tls::TlsErrc> : std::true_type {};
