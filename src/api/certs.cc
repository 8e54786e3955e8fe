// Public certificate helpers: holdfast::generate_self_signed_certificate over
// tls::generate_self_signed.
#include "holdfast/certs.h"

#include "tls/certificate.h"

namespace holdfast {

Result<GeneratedCertificate> generate_self_signed_certificate(
    const std::vector<std::string>& dns_names, const std::vector<std::string>& ip_addresses,
    int days) {
  Result<tls::GeneratedCert> generated = tls::generate_self_signed(dns_names, ip_addresses, days);
  if (!generated) {
    return fail(generated.error());
  }
  return GeneratedCertificate{std::move(generated->cert_pem), std::move(generated->key_pem),
                              std::move(generated->sha256_fingerprint)};
}

}  // namespace holdfast
