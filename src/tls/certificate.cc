// Certificate generation with OpenSSL 3.0: EC P-256 keys, X.509 v3 with SAN, signed with SHA-256.
#include "tls/certificate.h"

#include <memory>

#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/rand.h>
#include <openssl/x509v3.h>

#include "holdfast/tls_error.h"
#include "tls/context.h"
#include "tls/openssl_error.h"

namespace holdfast::tls {
namespace {

using KeyPtr = std::unique_ptr<EVP_PKEY, decltype(&EVP_PKEY_free)>;
using CertPtr = std::unique_ptr<X509, decltype(&X509_free)>;

// Backdated so that a peer whose clock is slightly behind still accepts a fresh certificate.
constexpr long kBackdateSeconds = 300;

struct CertSpec {
  std::string common_name;
  std::string subject_alt_names;  // "DNS:a,IP:1.2.3.4"; empty for a CA
  bool is_ca = false;
  int days = 30;
};

KeyPtr new_key() { return KeyPtr(EVP_EC_gen("P-256"), &EVP_PKEY_free); }

bool add_ext(X509* cert, X509* issuer, int nid, const std::string& value) {
  X509V3_CTX v3;
  X509V3_set_ctx_nodb(&v3);
  X509V3_set_ctx(&v3, issuer, cert, nullptr, nullptr, 0);
  X509_EXTENSION* ext = X509V3_EXT_conf_nid(nullptr, &v3, nid, value.c_str());
  if (ext == nullptr) {
    return false;
  }
  const bool ok = X509_add_ext(cert, ext, -1) == 1;
  X509_EXTENSION_free(ext);
  return ok;
}

bool set_serial(X509* cert) {
  unsigned char bytes[16];
  if (RAND_bytes(bytes, sizeof bytes) != 1) {
    return false;
  }
  bytes[0] &= 0x7F;  // RFC 5280 §4.1.2.2: a positive integer
  BIGNUM* bn = BN_bin2bn(bytes, sizeof bytes, nullptr);
  const bool ok = bn != nullptr && BN_to_ASN1_INTEGER(bn, X509_get_serialNumber(cert)) != nullptr;
  BN_free(bn);
  return ok;
}

bool add_extensions(X509* cert, X509* issuer, const CertSpec& spec) {
  if (spec.is_ca) {
    return add_ext(cert, issuer, NID_basic_constraints, "critical,CA:TRUE") &&
           add_ext(cert, issuer, NID_key_usage, "critical,keyCertSign,cRLSign") &&
           add_ext(cert, issuer, NID_subject_key_identifier, "hash");
  }
  return add_ext(cert, issuer, NID_basic_constraints, "critical,CA:FALSE") &&
         add_ext(cert, issuer, NID_key_usage, "critical,digitalSignature") &&
         add_ext(cert, issuer, NID_ext_key_usage, "serverAuth,clientAuth") &&
         add_ext(cert, issuer, NID_subject_key_identifier, "hash") &&
         add_ext(cert, issuer, NID_authority_key_identifier, "keyid") &&
         (spec.subject_alt_names.empty() ||
          add_ext(cert, issuer, NID_subject_alt_name, spec.subject_alt_names));
}

// Builds a certificate for `key`, signed by `issuer_key`; `issuer` null = self-signed.
CertPtr make_cert(EVP_PKEY* key, const CertSpec& spec, X509* issuer, EVP_PKEY* issuer_key) {
  CertPtr cert(X509_new(), &X509_free);
  if (!cert || X509_set_version(cert.get(), X509_VERSION_3) != 1 || !set_serial(cert.get())) {
    return CertPtr(nullptr, &X509_free);
  }
  X509_NAME* name = X509_get_subject_name(cert.get());
  X509_NAME_add_entry_by_txt(name, "CN", MBSTRING_UTF8,
                             reinterpret_cast<const unsigned char*>(spec.common_name.c_str()), -1,
                             -1, 0);
  X509* signer = issuer != nullptr ? issuer : cert.get();
  const bool ok = X509_set_issuer_name(cert.get(), X509_get_subject_name(signer)) == 1 &&
                  X509_gmtime_adj(X509_getm_notBefore(cert.get()), -kBackdateSeconds) != nullptr &&
                  X509_gmtime_adj(X509_getm_notAfter(cert.get()), 86400L * spec.days) != nullptr &&
                  X509_set_pubkey(cert.get(), key) == 1 &&
                  add_extensions(cert.get(), signer, spec) &&
                  X509_sign(cert.get(), issuer_key, EVP_sha256()) > 0;
  return ok ? std::move(cert) : CertPtr(nullptr, &X509_free);
}

template <typename Write>
std::string to_pem(Write write) {
  std::unique_ptr<BIO, decltype(&BIO_free)> bio(BIO_new(BIO_s_mem()), &BIO_free);
  if (!bio || write(bio.get()) != 1) {
    return {};
  }
  char* data = nullptr;
  const long len = BIO_get_mem_data(bio.get(), &data);
  return std::string(data, static_cast<std::size_t>(len));
}

std::string cert_pem(X509* cert) {
  return to_pem([cert](BIO* b) { return PEM_write_bio_X509(b, cert); });
}

std::string key_pem(EVP_PKEY* key) {
  return to_pem([key](BIO* b) {
    return PEM_write_bio_PrivateKey(b, key, nullptr, nullptr, 0, nullptr, nullptr);
  });
}

std::string fingerprint(X509* cert) {
  unsigned char md[EVP_MAX_MD_SIZE];
  unsigned int len = 0;
  if (X509_digest(cert, EVP_sha256(), md, &len) != 1) {
    return {};
  }
  static const char kHex[] = "0123456789ABCDEF";
  std::string out;
  for (unsigned int i = 0; i < len; ++i) {
    if (i != 0) {
      out += ':';
    }
    out += kHex[md[i] >> 4];
    out += kHex[md[i] & 0xF];
  }
  return out;
}

CertSpec leaf_spec(const std::vector<std::string>& dns_names, const std::vector<std::string>& ips,
                   int days) {
  CertSpec spec;
  spec.days = days;
  for (const std::string& d : dns_names) {
    spec.subject_alt_names += (spec.subject_alt_names.empty() ? "DNS:" : ",DNS:") + d;
  }
  for (const std::string& ip : ips) {
    spec.subject_alt_names += (spec.subject_alt_names.empty() ? "IP:" : ",IP:") + ip;
  }
  spec.common_name = !dns_names.empty() ? dns_names.front()
                     : !ips.empty()     ? ips.front()
                                        : "holdfast";
  return spec;
}

}  // namespace

Result<GeneratedCert> generate_self_signed(const std::vector<std::string>& dns_names,
                                           const std::vector<std::string>& ip_addresses, int days) {
  init_once();
  ErrorQueueGuard guard;
  KeyPtr key = new_key();
  CertPtr cert =
      key ? make_cert(key.get(), leaf_spec(dns_names, ip_addresses, days), nullptr, key.get())
          : CertPtr(nullptr, &X509_free);
  if (!cert) {
    return fail(TlsErrc::certificate_generation_failed);
  }
  GeneratedCert out{cert_pem(cert.get()), key_pem(key.get()), fingerprint(cert.get())};
  if (out.cert_pem.empty() || out.key_pem.empty() || out.sha256_fingerprint.empty()) {
    return fail(TlsErrc::certificate_generation_failed);
  }
  return out;
}

Result<GeneratedChain> generate_ca_and_leaf(const std::vector<std::string>& dns_names,
                                            const std::vector<std::string>& ips, int days) {
  init_once();
  ErrorQueueGuard guard;
  KeyPtr ca_key = new_key();
  KeyPtr leaf_key = new_key();
  if (!ca_key || !leaf_key) {
    return fail(TlsErrc::certificate_generation_failed);
  }
  CertSpec ca_spec{"holdfast test CA", "", true, days};
  CertPtr ca = make_cert(ca_key.get(), ca_spec, nullptr, ca_key.get());
  CertPtr leaf =
      ca ? make_cert(leaf_key.get(), leaf_spec(dns_names, ips, days), ca.get(), ca_key.get())
         : CertPtr(nullptr, &X509_free);
  if (!leaf) {
    return fail(TlsErrc::certificate_generation_failed);
  }
  GeneratedChain out{cert_pem(ca.get()), cert_pem(leaf.get()), key_pem(leaf_key.get())};
  if (out.ca_cert_pem.empty() || out.leaf_cert_pem.empty() || out.leaf_key_pem.empty()) {
    return fail(TlsErrc::certificate_generation_failed);
  }
  return out;
}

}  // namespace holdfast::tls
