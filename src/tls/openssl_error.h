// Private: turning OpenSSL's error queue and verification results into tls_category() codes.
#pragma once

#include <system_error>

#include "holdfast/tls_error.h"

struct ssl_st;

namespace holdfast::tls {

/// Value ranges inside tls_category(): own TlsErrc values are below kVerifyBase; a certificate
/// verification result `v` (X509_V_ERR_*) is kVerifyBase + v; an OpenSSL error with library `l` and
/// reason `r` (r < 2^20) is kOpensslBase | l << 20 | r.
inline constexpr int kVerifyBase = 0x10000;
inline constexpr int kOpensslBase = 0x20000000;

/// The tls_category() code of an X509_V_ERR_* value.
std::error_code verify_error_code(long x509_verify_result) noexcept;

/// The tls_category() code of an OpenSSL packed error (ERR_get_error()); system errors (ERR_LIB_SYS
/// or the system flag) become std::system_category codes.
std::error_code openssl_error_code(unsigned long packed) noexcept;

/// Drains the calling thread's OpenSSL error queue and returns the code of its first (root-cause)
/// entry; a certificate-verify failure becomes the verification result of `ssl` (may be null).
/// Returns `fallback` when the queue is empty. Leaves the queue empty.
std::error_code take_error(const ssl_st* ssl, std::error_code fallback);

/// Clears the thread's OpenSSL error queue on construction and on destruction, so no error of one
/// operation can be read by the next one (or by another connection on the same thread).
class ErrorQueueGuard {
 public:
  ErrorQueueGuard() noexcept;
  ~ErrorQueueGuard();
  ErrorQueueGuard(const ErrorQueueGuard&) = delete;
  ErrorQueueGuard& operator=(const ErrorQueueGuard&) = delete;
};

}  // namespace holdfast::tls
