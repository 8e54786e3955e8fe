// Private: generated certificates (EC P-256) for `holdfast serve` without --cert and for tests.
#pragma once

#include <string>
#include <vector>

#include "holdfast/result.h"

namespace holdfast::tls {

/// A self-signed certificate and its key, in PEM.
struct GeneratedCert {
  std::string cert_pem;            ///< the certificate
  std::string key_pem;             ///< its private key (PKCS#8, unencrypted)
  std::string sha256_fingerprint;  ///< SHA-256 of the DER certificate, "AB:CD:..." (uppercase)
};

/// Generates an EC P-256 key and a self-signed certificate valid from now for `days` days, with
/// subjectAltName DNS entries for `dns_names` and IP entries for `ip_addresses` (CN = the first DNS
/// name, else the first IP, else "holdfast"). Nothing is ever written to disk. Errors:
/// TlsErrc::certificate_generation_failed (also for an unparsable IP address). Thread-safe.
Result<GeneratedCert> generate_self_signed(const std::vector<std::string>& dns_names,
                                           const std::vector<std::string>& ip_addresses,
                                           int days = 30);

/// A CA certificate and a leaf certificate + key signed by it, in PEM (for tests of verification
/// with a real chain: trust `ca_cert_pem`, serve `leaf_cert_pem` with `leaf_key_pem`).
struct GeneratedChain {
  std::string ca_cert_pem;    ///< the CA (basicConstraints CA:TRUE)
  std::string leaf_cert_pem;  ///< the leaf (serverAuth, clientAuth; SAN as given)
  std::string leaf_key_pem;   ///< the leaf's private key
};

/// Generates a CA (key discarded after signing) and a leaf for `dns_names`/`ips`, both valid for
/// `days` days. Errors: TlsErrc::certificate_generation_failed. Thread-safe.
Result<GeneratedChain> generate_ca_and_leaf(const std::vector<std::string>& dns_names,
                                            const std::vector<std::string>& ips, int days = 30);

}  // namespace holdfast::tls
