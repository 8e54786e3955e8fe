// Private: the TLS 1.3 record protection of a taken-over connection (RFC 8446 §5, §7): keys from
// traffic secrets, sealing and opening records over OpenSSL's EVP AEADs, no SSL object.
#pragma once

#include <cstddef>
#include <cstdint>
#include <optional>
#include <span>
#include <string_view>
#include <vector>

namespace holdfast::tls {

/// The three TLS 1.3 AEAD cipher suites the own record layer carries (RFC 8446 §B.4). Any other
/// suite (the CCM ones) keeps the OpenSSL SSL.
enum class AeadSuite : std::uint8_t { aes_128_gcm, aes_256_gcm, chacha20_poly1305 };

/// The suite for an IANA / OpenSSL TLS 1.3 name ("TLS_AES_128_GCM_SHA256", ...), or nullopt.
std::optional<AeadSuite> suite_from_name(std::string_view name);

inline constexpr std::size_t kRecordHeaderLen = 5;        ///< type, legacy version, length
inline constexpr std::size_t kAeadTagLen = 16;            ///< all three suites
inline constexpr std::size_t kMaxPlaintextLen = 16384;    ///< RFC 8446 §5.1: 2^14
inline constexpr std::size_t kMaxCiphertextLen = 16640;   ///< RFC 8446 §5.2: 2^14 + 256
inline constexpr std::size_t kMaxInnerPlaintext = 16385;  ///< RFC 8446 §5.4: 2^14 + 1
inline constexpr std::size_t kMaxSecretLen = 48;          ///< SHA-384

/// Record content types (RFC 8446 §5.1).
inline constexpr std::uint8_t kChangeCipherSpec = 20;
inline constexpr std::uint8_t kAlert = 21;
inline constexpr std::uint8_t kHandshake = 22;
inline constexpr std::uint8_t kApplicationData = 23;

/// Alert descriptions sent or recognised (RFC 8446 §6).
inline constexpr std::uint8_t kCloseNotify = 0;
inline constexpr std::uint8_t kUnexpectedMessage = 10;
inline constexpr std::uint8_t kBadRecordMac = 20;
inline constexpr std::uint8_t kRecordOverflow = 22;
inline constexpr std::uint8_t kIllegalParameter = 47;
inline constexpr std::uint8_t kDecodeError = 50;
inline constexpr std::uint8_t kProtocolVersion = 70;
inline constexpr std::uint8_t kInternalError = 80;
inline constexpr std::uint8_t kUserCanceled = 90;

/// The keys of one direction: the current traffic secret (for KeyUpdate, §7.2), the derived key
/// and IV (§7.3), the record sequence number (§5.3) and a process-unique id of this key generation
/// (lets thread-local cipher contexts skip re-keying). Cleansed by cleanse().
struct DirectionKeys {
  std::uint8_t secret[kMaxSecretLen];
  std::uint8_t key[32];
  std::uint8_t iv[12];
  std::uint64_t seq;
  std::uint64_t key_id;
};

/// The record state of one connection, taken from the record slab (record_slab.h): both
/// directions' keys and the traffic secrets captured during the handshake (keylog.h) before they
/// are installed. Cleansed before it returns to the slab.
struct RecordState {
  DirectionKeys write;
  DirectionKeys read;
  AeadSuite suite = AeadSuite::aes_128_gcm;
  bool is_server = false;
  std::uint8_t write_secret_len = 0;  ///< captured generation-0 secret length, 0 = not yet seen
  std::uint8_t read_secret_len = 0;
  bool key_update_requested = false;  ///< we asked the peer to update and it has not yet
};

/// Why a record could not be opened: the alert to send and the OpenSSL reason code (SSL_R_*) that
/// names the cause in tls_category() (the same messages the kept-SSL path gives).
struct RecordFailure {
  std::uint8_t alert;
  int reason;
};

/// Secret length (hash length) of `suite`: 32 or 48.
std::size_t secret_len(AeadSuite suite);

/// Installs `secret` (secret_len(suite) bytes) as generation 0 of `keys`: derives key and IV, sets
/// seq 0, gives a new key_id. False if the length is wrong or derivation failed.
bool install_secret(AeadSuite suite, std::span<const std::uint8_t> secret, DirectionKeys* keys);

/// KeyUpdate (RFC 8446 §7.2): secret = HKDF-Expand-Label(secret, "traffic upd", "", Hash.length),
/// then new key, IV, seq 0, key_id. The old values are overwritten. False on failure.
bool update_secret(AeadSuite suite, DirectionKeys* keys);

/// Overwrites `keys` with zeros in a way the compiler cannot elide (OPENSSL_cleanse), and drops
/// the calling thread's cached cipher context (key schedule) for them, if any.
void cleanse(DirectionKeys* keys);

/// Frees every cipher context the calling thread keeps for busy connections (at most 128 per
/// suite and direction, in a 2-way set-associative cache: a per-thread cost, not a per-connection
/// one). They are made again on use.
void drop_thread_key_schedules();

/// True while the calling thread keeps a keyed cipher context (a key schedule) for the key
/// `key_id` (DirectionKeys::key_id). For tests.
bool key_schedule_cached(std::uint64_t key_id);

/// HKDF-Expand-Label (RFC 8446 §7.1) for outputs of at most one hash length. Exposed for tests.
bool hkdf_expand_label(AeadSuite suite, std::span<const std::uint8_t> secret,
                       std::string_view label, std::span<std::uint8_t> out);

/// Seals one record of inner type `type` holding `content` and `padding` zero bytes (RFC 8446
/// §5.4) and appends it, header included, to `out`; advances keys->seq. False if the AEAD failed,
/// seq would wrap, or the body would exceed 2^14 + 256 bytes. The engine never pads and never
/// passes more than 2^14 bytes; tests use both to build malformed records.
bool seal_record(AeadSuite suite, DirectionKeys* keys, std::uint8_t type,
                 std::span<const std::uint8_t> content, std::vector<std::uint8_t>* out,
                 std::size_t padding = 0);

/// How many bytes the first record in `in` occupies, header included; 0 when more bytes are needed
/// to know or to hold it whole. A header that can never be valid (outer type, version, length over
/// 2^14 + 256) fails at once, so an oversized announcement never waits for its body.
struct RecordSize {
  std::size_t total = 0;
  std::optional<RecordFailure> failure;
};
RecordSize peek_record(std::span<const std::uint8_t> in);

/// A record opened in place.
struct OpenedRecord {
  std::uint8_t type = 0;        ///< inner content type (§5.4)
  std::size_t content_len = 0;  ///< plaintext bytes, at record[kRecordHeaderLen]
  std::optional<RecordFailure> failure;
};

/// Decrypts and authenticates the whole record `record` (exactly peek_record().total bytes) in
/// place and strips the padding; advances keys->seq on success. Failures: bad_record_mac (tag),
/// record_overflow (inner plaintext over 2^14 + 1), unexpected_message (no content type, or an
/// unknown one).
OpenedRecord open_record(AeadSuite suite, DirectionKeys* keys, std::span<std::uint8_t> record);

}  // namespace holdfast::tls
