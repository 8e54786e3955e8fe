// Handshake-burst accounting: malloc_trim once the last handshake of a burst ended.
#include "transport/handshake_burst.h"

#include <malloc.h>

#include <algorithm>
#include <cstdlib>
#include <cstring>

namespace holdfast::transport {
namespace {

HandshakeBurst::Stats& counters() {
  thread_local HandshakeBurst::Stats stats;
  return stats;
}

// HOLDFAST_MALLOC_TRIM=0 in the environment turns the trim off process-wide, for comparisons.
bool trim_enabled() {
  static const bool enabled = [] {
    const char* v = std::getenv("HOLDFAST_MALLOC_TRIM");
    return v == nullptr || std::strcmp(v, "0") != 0;
  }();
  return enabled;
}

}  // namespace

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
