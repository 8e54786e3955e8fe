// Certificate helpers for servers and tests: generated self-signed certificates (never committed).
#pragma once

#include <string>
#include <vector>

#include "holdfast/result.h"

namespace holdfast {

/// A generated certificate and its private key, PEM-encoded.
struct GeneratedCertificate {
  std::string cert_pem;
  std::string key_pem;
  std::string sha256_fingerprint;  ///< "AB:CD:..." of the DER certificate, as browsers show it
};

/// Generates a self-signed EC P-256 certificate valid for `days`, with the DNS names and IP
/// addresses as subjectAltName entries (e.g. {"localhost"}, {"127.0.0.1", "::1"}). Thread-safe.
Result<GeneratedCertificate> generate_self_signed_certificate(
    const std::vector<std::string>& dns_names, const std::vector<std::string>& ip_addresses,
    int days = 30);

}  // namespace holdfast
