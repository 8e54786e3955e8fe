// Private: per-thread accounting of TLS handshakes in flight, returning the heap a burst of
// concurrent handshakes left behind to the system once the burst is over.
#pragma once

#include <cstddef>

namespace holdfast::transport {

/// A new TLS connection needs ~35-50 KB of transient state (OpenSSL's handshake state and buffers,
/// then its first exchange) that is freed once it first goes idle; its long-lived objects live in
/// the slabs of base/slab.h, apart from the malloc heap. After thousands of concurrent new
/// connections (a server whose clients all connect at once) glibc keeps the freed pages: its
/// free() returns only the top of a heap, so RSS stays at the burst's peak. This counts new
/// connections per thread from the start of the handshake to their first idle point
/// (Transport::release_idle_memory) or close and, when the last one of a burst gets there, calls
/// malloc_trim(0), which releases every whole free page. A thread whose new connections never
/// overlapped much never trims. Loop-thread only (thread_local).
///
/// OFF by default: HOLDFAST_MALLOC_TRIM=1 in the environment turns it on. Since the connection
/// objects moved to slabs the trim costs no measurable CPU in bench_connection_scaling (rounds of
/// 200 new connections; before, it doubled the CPU per connection), and it takes `holdfast bench`
/// from ~3.9 / 4.3 KB to 2.3 / 1.7 KB RSS per idle connection (server / client). It stays off
/// because malloc_trim runs on the loop thread and its cost grows with the free chunks of every
/// arena, which the application's own heap may hold by millions (docs/server.md).
class HandshakeBurst {
 public:
  /// Turns the trim on or off for the process (tests; the default comes from the environment).
  static void set_enabled(bool enabled);
  /// A burst counts when this many handshakes were in flight at once on the thread...
  static constexpr std::size_t kMinPeak = 16;
  /// ...and at least this many ended since the last trim.
  static constexpr std::size_t kMinEnded = 64;

  /// A handshake started on this thread.
  static void started();
  /// A handshake that started() ended (done, failed, or its connection closed). Trims the heap
  /// when it was the last of a burst.
  static void ended();

  /// What the calling thread has seen (for tests).
  struct Stats {
    std::size_t in_flight = 0;
    std::size_t peak = 0;   ///< most in flight at once since the last trim
    std::size_t ended = 0;  ///< handshakes ended since the last trim
    std::size_t trims = 0;  ///< malloc_trim calls so far
  };
  /// The calling thread's counters.
  static Stats stats();
};

}  // namespace holdfast::transport
