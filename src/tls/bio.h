// Private: a custom OpenSSL BIO over an engine's own input and output byte queues.
#pragma once

#include <cstddef>
#include <cstdint>
#include <span>
#include <vector>

struct bio_st;

namespace holdfast::tls {

/// The two byte queues between OpenSSL and the caller of an Engine: ciphertext received but not
/// yet consumed by OpenSSL (`in`), and ciphertext OpenSSL produced that the caller has not yet sent
/// (`out`). Offsets instead of erasing keep consumption O(1); the vectors are compacted lazily and
/// released to zero capacity by release(). Not thread-safe (one connection, one thread).
struct ByteQueues {
  std::vector<std::uint8_t> in;
  std::size_t in_pos = 0;
  std::vector<std::uint8_t> out;
  std::size_t out_pos = 0;
  std::uint64_t consumed = 0;  ///< bytes of `in` ever read through the BIO (the take-over guard)
  /// The BIO hands out nothing beyond this `consumed` offset (it asks to retry instead): a client
  /// waiting to take over stops OpenSSL at the end of the server's first post-handshake record.
  std::uint64_t read_limit = UINT64_MAX;
  bool eof = false;  ///< transport EOF: the BIO reports end-of-file instead of "retry" when empty

  /// Appends received ciphertext.
  void push_input(std::span<const std::uint8_t> bytes);
  /// Bytes of `in` not yet read by OpenSSL.
  [[nodiscard]] std::size_t input_left() const { return in.size() - in_pos; }
  /// Ciphertext waiting to be sent.
  [[nodiscard]] std::span<const std::uint8_t> output() const {
    return {out.data() + out_pos, out.size() - out_pos};
  }
  /// Marks `n` bytes of output() as sent (clamped to what is there).
  void consume_output(std::size_t n);
  /// Frees both vectors' storage when both are empty. Returns false (and keeps them) otherwise.
  bool release();
};

/// A new BIO whose reads take from `queues->in` and whose writes append to `queues->out`. Reads
/// from an empty queue ask to retry (or report EOF once `queues->eof` is set); writes always
/// succeed whole, so OpenSSL never sees a short write. `queues` must outlive the BIO. Costs one BIO
/// struct
/// (~208 B) and no buffer. Returns null if OpenSSL cannot allocate. Thread-safe to call.
bio_st* new_queue_bio(ByteQueues* queues);

}  // namespace holdfast::tls
