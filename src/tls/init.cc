// Process-wide TLS setup done once: OpenSSL init, RNG seeding, cipher fetches, the system CA store.
#include <atomic>
#include <mutex>

#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/rand.h>
#include <openssl/ssl.h>
#include <openssl/x509_vfy.h>

#include "tls/context.h"

namespace holdfast::tls {
namespace {

std::atomic<std::size_t> g_store_loads{0};
EVP_CIPHER* g_kept_ciphers[3] = {};  // never freed: held for the life of the process on purpose

void fetch_ciphers() {
  // Fetched once and kept for the life of the process: the provider's method store then holds
  // them warm, so the first handshakes do not pay for the lookups (notes/tls-record-takeover.md 9).
  static const char* const kNames[] = {"AES-128-GCM", "AES-256-GCM", "ChaCha20-Poly1305"};
  for (int i = 0; i < 3; ++i) {
    g_kept_ciphers[i] = EVP_CIPHER_fetch(nullptr, kNames[i], nullptr);
  }
}

}  // namespace

x509_store_st* system_ca_store() {
  static X509_STORE* store = nullptr;
  static std::once_flag once;
  std::call_once(once, [] {
    // Incident 001: parsing the CA bundle per connection cost 1 MB and 10x the CPU. Parse once,
    // share by reference (SSL_CTX_set1_cert_store up-refs it).
    store = X509_STORE_new();
    if (store != nullptr && X509_STORE_set_default_paths(store) != 1) {
      X509_STORE_free(store);
      store = nullptr;
    }
    g_store_loads.fetch_add(1, std::memory_order_relaxed);
  });
  return store;
}

void init_once() {
  static std::once_flag once;
  std::call_once(once, [] {
    OPENSSL_init_ssl(OPENSSL_INIT_LOAD_SSL_STRINGS | OPENSSL_INIT_LOAD_CRYPTO_STRINGS, nullptr);
    unsigned char seed_probe[1];
    (void)RAND_bytes(seed_probe, sizeof seed_probe);  // seeds the DRBG now, not in a handshake
    fetch_ciphers();
    (void)system_ca_store();
    ERR_clear_error();
  });
}

evp_cipher_st* fetched_aead_cipher(int index) {
  init_once();
  return index >= 0 && index < 3 ? g_kept_ciphers[index] : nullptr;
}

std::size_t system_ca_store_loads() { return g_store_loads.load(std::memory_order_relaxed); }

}  // namespace holdfast::tls
