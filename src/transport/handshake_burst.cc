// Handshake-burst accounting: malloc_trim once the last handshake of a burst ended.
#include "transport/handshake_burst.h"

#include <malloc.h>

#include <algorithm>
#include <atomic>
#include <cstdlib>
#include <cstring>

namespace holdfast::transport {
namespace {

HandshakeBurst::Stats& counters() {
  thread_local HandshakeBurst::Stats stats;
  return stats;
}

// Off unless HOLDFAST_MALLOC_TRIM=1 (see the header: the trim costs more CPU than it saves
// memory for a server taking bursts again and again). set_enabled() overrides it.
std::atomic<int>& trim_setting() {
  static std::atomic<int> setting{[] {
    const char* v = std::getenv("HOLDFAST_MALLOC_TRIM");
    return v != nullptr && std::strcmp(v, "1") == 0 ? 1 : 0;
  }()};
  return setting;
}

bool trim_enabled() { return trim_setting().load(std::memory_order_relaxed) != 0; }

}  // namespace

void HandshakeBurst::set_enabled(bool enabled) {
  trim_setting().store(enabled ? 1 : 0, std::memory_order_relaxed);
}

void HandshakeBurst::started() {
  Stats& s = counters();
  ++s.in_flight;
  s.peak = std::max(s.peak, s.in_flight);
}

void HandshakeBurst::ended() {
  Stats& s = counters();
  if (s.in_flight == 0) {
    return;
  }
  --s.in_flight;
  ++s.ended;
  if (s.in_flight == 0 && s.peak >= kMinPeak && s.ended >= kMinEnded && trim_enabled()) {
    // Releases whole free pages in every arena (madvise), not only the top of each heap.
    malloc_trim(0);
    ++s.trims;
    s.peak = 0;
    s.ended = 0;
  }
}

HandshakeBurst::Stats HandshakeBurst::stats() { return counters(); }

}  // namespace holdfast::transport
