// TLS 1.3 record protection over EVP AEADs: HKDF-Expand-Label, KeyUpdate, seal and open in place.
#include "tls/record.h"

#include <pthread.h>

#include <algorithm>
#include <atomic>
#include <cstring>
#include <mutex>

#include <openssl/crypto.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <openssl/ssl.h>

#include "tls/context.h"

namespace holdfast::tls {
namespace {

constexpr std::size_t kIvLen = 12;
constexpr int kSuites = 3;

std::atomic<std::uint64_t> g_next_key_id{1};

std::size_t key_len(AeadSuite suite) { return suite == AeadSuite::aes_128_gcm ? 16 : 32; }

const EVP_MD* digest(AeadSuite suite) {
  return suite == AeadSuite::aes_256_gcm ? EVP_sha384() : EVP_sha256();
}

// Keyed contexts kept per suite, direction and thread. One slot per key would cost ~1.2 KB per
// direction and connection (notes/tls-record-takeover.md); a single slot shared by every
// connection re-keys (AES key schedule, GHASH table, provider parameter plumbing: ~3,000
// instructions) for every record once a loop serves more than one busy connection. A small
// 2-way set-associative cache (64 sets, the least recently used way replaced) keeps the keys of
// up to ~100 busy connections warm, costs nothing per idle connection, and holds at most
// kCipherSets * kCipherWays = 128 contexts per suite and direction and thread (~300 KB per thread
// with both directions of one suite busy; made on first use only). A direct-mapped cache of 64
// re-keyed on ~17 % of the records of 64 busy connections (colliding ids); this one on ~0.5 %.
constexpr int kCipherSetBits = 6;
constexpr std::size_t kCipherSets = std::size_t{1} << kCipherSetBits;
constexpr std::size_t kCipherWays = 2;

struct CipherSet {
  EVP_CIPHER_CTX* ctx[kCipherWays] = {};
  std::uint64_t loaded[kCipherWays] = {};  // the key_id each context holds, 0 = none
  std::size_t recent = 0;                  // the way used last: a miss replaces the other one

  void drop(std::size_t way) {
    EVP_CIPHER_CTX_free(ctx[way]);  // also cleanses the key schedule
    ctx[way] = nullptr;
    loaded[way] = 0;
  }
};

struct ThreadCiphers {
  CipherSet sets[kSuites][2][kCipherSets] = {};
  ThreadCiphers* prev = nullptr;
  ThreadCiphers* next = nullptr;

  // Calls fn(CipherSet&) for every set of every suite and direction.
  template <typename Fn>
  void for_each_set(Fn fn) {
    for (auto& per_suite : sets) {
      for (auto& per_direction : per_suite) {
        for (CipherSet& set : per_direction) {
          fn(set);
        }
      }
    }
  }
};

// Fibonacci hashing: key ids are consecutive (two per connection), the sets spread them.
std::size_t slot_of(std::uint64_t key_id) {
  constexpr std::uint64_t kGolden = 0x9E3779B97F4A7C15ULL;
  return static_cast<std::size_t>((key_id * kGolden) >> (64 - kCipherSetBits));
}

// Every live thread's contexts, linked from a global: a child forked from a multi-threaded parent
// keeps the (never used again) contexts of threads it does not have reachable, not leaked. The
// registry itself is never destroyed. A pthread key (not a thread_local with a destructor, whose
// at-exit record is lost in such a child) frees a thread's contexts when it exits.
struct CipherRegistry {
  std::mutex mu;
  ThreadCiphers* head = nullptr;
  pthread_key_t key{};
};

void free_thread_ciphers(void* arg);

CipherRegistry& registry() {
  static auto* r = [] {
    auto* made = new CipherRegistry;
    pthread_key_create(&made->key, free_thread_ciphers);
    return made;
  }();
  return *r;
}

void free_thread_ciphers(void* arg) {
  auto* tc = static_cast<ThreadCiphers*>(arg);
  {
    CipherRegistry& r = registry();
    std::lock_guard lock(r.mu);
    (tc->prev != nullptr ? tc->prev->next : r.head) = tc->next;
    if (tc->next != nullptr) {
      tc->next->prev = tc->prev;
    }
  }
  tc->for_each_set([](CipherSet& set) {
    for (std::size_t way = 0; way < kCipherWays; ++way) {
      set.drop(way);
    }
  });
  delete tc;
}

thread_local ThreadCiphers* t_ciphers = nullptr;  // trivially destructible: no at-exit record

ThreadCiphers& thread_ciphers() {
  ThreadCiphers*& tc = t_ciphers;
  if (tc == nullptr) {
    tc = new ThreadCiphers;
    CipherRegistry& r = registry();
    std::lock_guard lock(r.mu);
    tc->next = r.head;
    if (r.head != nullptr) {
      r.head->prev = tc;
    }
    r.head = tc;
    pthread_setspecific(r.key, tc);
  }
  return *tc;
}

// The way of `set` to (re)key for a key it does not hold: an empty one, else the least recent.
std::size_t victim_way(const CipherSet& set) {
  for (std::size_t way = 0; way < kCipherWays; ++way) {
    if (set.ctx[way] == nullptr) {
      return way;
    }
  }
  return (set.recent + 1) % kCipherWays;
}

// The context for `keys`, keyed (iv set per record). Null on failure.
EVP_CIPHER_CTX* cipher_for(AeadSuite suite, const DirectionKeys& keys, bool encrypt) {
  const auto s = static_cast<int>(suite);
  const int e = encrypt ? 1 : 0;
  CipherSet& set = thread_ciphers().sets[s][e][slot_of(keys.key_id)];
  for (std::size_t way = 0; way < kCipherWays; ++way) {
    if (set.loaded[way] == keys.key_id && set.ctx[way] != nullptr) {
      set.recent = way;
      return set.ctx[way];
    }
  }
  const std::size_t way = victim_way(set);
  EVP_CIPHER_CTX*& ctx = set.ctx[way];
  const EVP_CIPHER* cipher = nullptr;
  if (ctx == nullptr) {
    ctx = EVP_CIPHER_CTX_new();
    cipher = fetched_aead_cipher(s);  // a warm context is re-keyed with a NULL cipher (note 9)
    if (ctx == nullptr || cipher == nullptr) {
      set.drop(way);
      return nullptr;
    }
  }
  set.loaded[way] = 0;
  if (EVP_CipherInit_ex2(ctx, cipher, keys.key, nullptr, e, nullptr) != 1) {
    set.drop(way);
    return nullptr;
  }
  set.loaded[way] = keys.key_id;
  set.recent = way;
  return ctx;
}

// Drops this thread's cached context for `key_id`, if any, so that no key schedule outlives the
// keys it was made from (the connection closed, or a KeyUpdate replaced them). Contexts of other
// threads are not touched: a key is only ever loaded on the thread that runs its connection.
void forget_cached_key(std::uint64_t key_id) {
  ThreadCiphers* tc = t_ciphers;
  if (tc == nullptr || key_id == 0) {
    return;
  }
  const std::size_t slot = slot_of(key_id);
  for (auto& per_suite : tc->sets) {
    for (auto& per_direction : per_suite) {
      CipherSet& set = per_direction[slot];
      for (std::size_t way = 0; way < kCipherWays; ++way) {
        if (set.loaded[way] == key_id) {
          set.drop(way);
        }
      }
    }
  }
}

// RFC 8446 §5.3: the per-record nonce is the IV XORed with the 64-bit sequence number.
void make_nonce(const DirectionKeys& keys, std::uint8_t* nonce) {
  std::memcpy(nonce, keys.iv, kIvLen);
  for (int i = 0; i < 8; ++i) {
    nonce[kIvLen - 1 - i] ^= static_cast<std::uint8_t>(keys.seq >> (8 * i));
  }
}

bool derive_key_iv(AeadSuite suite, DirectionKeys* keys) {
  const std::span<const std::uint8_t> secret(keys->secret, secret_len(suite));
  if (!hkdf_expand_label(suite, secret, "key", {keys->key, key_len(suite)}) ||
      !hkdf_expand_label(suite, secret, "iv", {keys->iv, kIvLen})) {
    return false;
  }
  keys->seq = 0;
  keys->key_id = g_next_key_id.fetch_add(1, std::memory_order_relaxed);
  return true;
}

void write_header(std::uint8_t* h, std::size_t body_len) {
  h[0] = kApplicationData;  // RFC 8446 §5.2: opaque_type is always application_data
  h[1] = 0x03;
  h[2] = 0x03;
  h[3] = static_cast<std::uint8_t>(body_len >> 8);
  h[4] = static_cast<std::uint8_t>(body_len);
}

}  // namespace

std::optional<AeadSuite> suite_from_name(std::string_view name) {
  if (name == "TLS_AES_128_GCM_SHA256") {
    return AeadSuite::aes_128_gcm;
  }
  if (name == "TLS_AES_256_GCM_SHA384") {
    return AeadSuite::aes_256_gcm;
  }
  if (name == "TLS_CHACHA20_POLY1305_SHA256") {
    return AeadSuite::chacha20_poly1305;
  }
  return std::nullopt;
}

std::size_t secret_len(AeadSuite suite) { return suite == AeadSuite::aes_256_gcm ? 48 : 32; }

bool hkdf_expand_label(AeadSuite suite, std::span<const std::uint8_t> secret,
                       std::string_view label, std::span<std::uint8_t> out) {
  // HkdfLabel = length(2) || "tls13 " + label (1-byte length) || context (empty here); HKDF-Expand
  // of at most one hash length is T(1) = HMAC(secret, HkdfLabel || 0x01) (RFC 5869 §2.3).
  constexpr std::string_view kPrefix = "tls13 ";
  const std::size_t hash_len = secret_len(suite);
  if (out.size() > hash_len || label.size() > 200) {
    return false;
  }
  std::uint8_t info[4 + 6 + 200 + 1];
  std::size_t n = 0;
  info[n++] = static_cast<std::uint8_t>(out.size() >> 8);
  info[n++] = static_cast<std::uint8_t>(out.size());
  info[n++] = static_cast<std::uint8_t>(kPrefix.size() + label.size());
  std::memcpy(info + n, kPrefix.data(), kPrefix.size());
  n += kPrefix.size();
  std::memcpy(info + n, label.data(), label.size());
  n += label.size();
  info[n++] = 0;  // empty context
  info[n++] = 1;  // T(1) counter
  std::uint8_t block[EVP_MAX_MD_SIZE];
  unsigned int block_len = 0;
  if (HMAC(digest(suite), secret.data(), static_cast<int>(secret.size()), info, n, block,
           &block_len) == nullptr ||
      block_len != hash_len) {
    return false;
  }
  std::memcpy(out.data(), block, out.size());
  OPENSSL_cleanse(block, sizeof block);
  return true;
}

bool install_secret(AeadSuite suite, std::span<const std::uint8_t> secret, DirectionKeys* keys) {
  if (secret.size() != secret_len(suite)) {
    return false;
  }
  if (secret.data() != keys->secret) {
    std::memcpy(keys->secret, secret.data(), secret.size());
  }
  return derive_key_iv(suite, keys);
}

bool update_secret(AeadSuite suite, DirectionKeys* keys) {
  std::uint8_t next[kMaxSecretLen];
  const std::size_t len = secret_len(suite);
  const bool ok = hkdf_expand_label(suite, {keys->secret, len}, "traffic upd", {next, len});
  if (ok) {
    std::memcpy(keys->secret, next, len);
  }
  OPENSSL_cleanse(next, sizeof next);
  forget_cached_key(keys->key_id);
  return ok && derive_key_iv(suite, keys);
}

void drop_thread_key_schedules() {
  ThreadCiphers* tc = t_ciphers;
  if (tc == nullptr) {
    return;
  }
  tc->for_each_set([](CipherSet& set) {
    for (std::size_t way = 0; way < kCipherWays; ++way) {
      set.drop(way);
    }
  });
}

bool key_schedule_cached(std::uint64_t key_id) {
  const ThreadCiphers* tc = t_ciphers;
  if (tc == nullptr || key_id == 0) {
    return false;
  }
  const std::size_t slot = slot_of(key_id);
  for (const auto& per_suite : tc->sets) {
    for (const auto& per_direction : per_suite) {
      const CipherSet& set = per_direction[slot];
      if (std::find(std::begin(set.loaded), std::end(set.loaded), key_id) != std::end(set.loaded)) {
        return true;
      }
    }
  }
  return false;
}

void cleanse(DirectionKeys* keys) {
  forget_cached_key(keys->key_id);
  OPENSSL_cleanse(keys, sizeof *keys);
}

bool seal_record(AeadSuite suite, DirectionKeys* keys, std::uint8_t type,
                 std::span<const std::uint8_t> content, std::vector<std::uint8_t>* out,
                 std::size_t padding) {
  const std::size_t inner_len = content.size() + 1 + padding;
  if (inner_len + kAeadTagLen > kMaxCiphertextLen || keys->seq == UINT64_MAX) {
    return false;
  }
  EVP_CIPHER_CTX* ctx = cipher_for(suite, *keys, /*encrypt=*/true);
  if (ctx == nullptr) {
    return false;
  }
  const std::size_t body_len = inner_len + kAeadTagLen;
  const std::size_t base = out->size();
  out->resize(base + kRecordHeaderLen + body_len);
  std::uint8_t* h = out->data() + base;
  write_header(h, body_len);
  std::uint8_t nonce[kIvLen];
  make_nonce(*keys, nonce);
  std::uint8_t* body = h + kRecordHeaderLen;
  // The content is encrypted straight from the caller's bytes; type and padding are appended in
  // place after it and encrypted there.
  std::uint8_t* tail = body + content.size();
  tail[0] = type;
  std::memset(tail + 1, 0, padding);
  int n = 0;
  int f = 0;
  const bool ok =
      EVP_CipherInit_ex2(ctx, nullptr, nullptr, nonce, 1, nullptr) == 1 &&
      EVP_CipherUpdate(ctx, nullptr, &n, h, static_cast<int>(kRecordHeaderLen)) == 1 &&
      EVP_CipherUpdate(ctx, body, &n, content.data(), static_cast<int>(content.size())) == 1 &&
      EVP_CipherUpdate(ctx, tail, &n, tail, static_cast<int>(1 + padding)) == 1 &&
      EVP_CipherFinal_ex(ctx, body + inner_len, &f) == 1 &&
      EVP_CIPHER_CTX_ctrl(ctx, EVP_CTRL_AEAD_GET_TAG, static_cast<int>(kAeadTagLen),
                          body + inner_len) == 1;
  if (!ok) {
    out->resize(base);
    return false;
  }
  ++keys->seq;
  return true;
}

RecordSize peek_record(std::span<const std::uint8_t> in) {
  RecordSize size;
  if (in.size() < kRecordHeaderLen) {
    return size;
  }
  if (in[0] != kApplicationData) {
    // RFC 8446 §5: after the handshake every record is protected; a change_cipher_spec or any
    // plaintext record now is unexpected.
    size.failure =
        RecordFailure{kUnexpectedMessage, in[0] == kChangeCipherSpec ? SSL_R_UNEXPECTED_CCS_MESSAGE
                                                                     : SSL_R_UNEXPECTED_RECORD};
    return size;
  }
  if (in[1] != 0x03 || in[2] != 0x03) {
    size.failure = RecordFailure{kProtocolVersion, SSL_R_WRONG_VERSION_NUMBER};
    return size;
  }
  const std::size_t len = static_cast<std::size_t>(in[3]) << 8 | in[4];
  if (len > kMaxCiphertextLen) {
    size.failure = RecordFailure{kRecordOverflow, SSL_R_ENCRYPTED_LENGTH_TOO_LONG};  // §5.2
    return size;
  }
  if (len < kAeadTagLen + 1) {
    size.failure = RecordFailure{kBadRecordMac, SSL_R_DECRYPTION_FAILED_OR_BAD_RECORD_MAC};
    return size;
  }
  if (in.size() >= kRecordHeaderLen + len) {
    size.total = kRecordHeaderLen + len;
  }
  return size;
}

OpenedRecord open_record(AeadSuite suite, DirectionKeys* keys, std::span<std::uint8_t> record) {
  OpenedRecord opened;
  EVP_CIPHER_CTX* ctx = cipher_for(suite, *keys, /*encrypt=*/false);
  if (ctx == nullptr || keys->seq == UINT64_MAX) {
    opened.failure = RecordFailure{kInternalError, ERR_R_INTERNAL_ERROR};
    return opened;
  }
  std::uint8_t* body = record.data() + kRecordHeaderLen;
  const std::size_t inner_len = record.size() - kRecordHeaderLen - kAeadTagLen;
  std::uint8_t nonce[kIvLen];
  make_nonce(*keys, nonce);
  int n = 0;
  int f = 0;
  const bool ok =
      EVP_CipherInit_ex2(ctx, nullptr, nullptr, nonce, 0, nullptr) == 1 &&
      EVP_CipherUpdate(ctx, nullptr, &n, record.data(), static_cast<int>(kRecordHeaderLen)) == 1 &&
      EVP_CipherUpdate(ctx, body, &n, body, static_cast<int>(inner_len)) == 1 &&
      EVP_CIPHER_CTX_ctrl(ctx, EVP_CTRL_AEAD_SET_TAG, static_cast<int>(kAeadTagLen),
                          body + inner_len) == 1 &&
      EVP_CipherFinal_ex(ctx, body + n, &f) == 1;
  if (!ok) {
    opened.failure = RecordFailure{kBadRecordMac, SSL_R_DECRYPTION_FAILED_OR_BAD_RECORD_MAC};
    return opened;
  }
  ++keys->seq;
  if (inner_len > kMaxInnerPlaintext) {
    opened.failure = RecordFailure{kRecordOverflow, SSL_R_DATA_LENGTH_TOO_LONG};  // §5.4
    return opened;
  }
  std::size_t end = inner_len;
  while (end > 0 && body[end - 1] == 0) {
    --end;  // §5.4: zero padding, then the real content type
  }
  if (end == 0) {
    opened.failure = RecordFailure{kUnexpectedMessage, SSL_R_BAD_RECORD_TYPE};
    return opened;
  }
  opened.type = body[end - 1];
  opened.content_len = end - 1;
  if (opened.type != kApplicationData && opened.type != kAlert && opened.type != kHandshake) {
    opened.failure = RecordFailure{kUnexpectedMessage, SSL_R_BAD_RECORD_TYPE};
  }
  return opened;
}

}  // namespace holdfast::tls
