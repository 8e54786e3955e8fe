// HandshakeBurst: the heap is trimmed once after a burst of concurrent handshakes, never for
// handshakes one at a time.
#include "transport/handshake_burst.h"

#include <thread>

#include <gtest/gtest.h>

namespace holdfast::transport {
namespace {

// Runs `fn` on a fresh thread, whose counters start at zero (they are thread_local), with the
// trim turned on (it is off by default).
template <typename Fn>
void on_fresh_thread(Fn fn, bool enabled = true) {
  HandshakeBurst::set_enabled(enabled);
  std::thread t(fn);
  t.join();
  HandshakeBurst::set_enabled(false);
}

TEST(HandshakeBurst, NeverTrimsWhenTurnedOff) {
  on_fresh_thread(
      [] {
        for (std::size_t i = 0; i < HandshakeBurst::kMinEnded; ++i) {
          HandshakeBurst::started();
        }
        for (std::size_t i = 0; i < HandshakeBurst::kMinEnded; ++i) {
          HandshakeBurst::ended();
        }
        EXPECT_EQ(HandshakeBurst::stats().trims, 0U);
      },
      false);
}

TEST(HandshakeBurst, TrimsOnceWhenTheLastHandshakeOfABurstEnds) {
  on_fresh_thread([] {
    for (std::size_t i = 0; i < HandshakeBurst::kMinEnded; ++i) {
      HandshakeBurst::started();
    }
    for (std::size_t i = 1; i < HandshakeBurst::kMinEnded; ++i) {
      HandshakeBurst::ended();
      EXPECT_EQ(HandshakeBurst::stats().trims, 0U) << "trimmed with handshakes still in flight";
    }
    HandshakeBurst::ended();
    const HandshakeBurst::Stats s = HandshakeBurst::stats();
    EXPECT_EQ(s.trims, 1U);
    EXPECT_EQ(s.in_flight, 0U);
    EXPECT_EQ(s.peak, 0U) << "the next burst is counted from zero";
    EXPECT_EQ(s.ended, 0U);
  });
}

TEST(HandshakeBurst, HandshakesOneAtATimeNeverTrim) {
  on_fresh_thread([] {
    for (int i = 0; i < 1000; ++i) {
      HandshakeBurst::started();
      HandshakeBurst::ended();
    }
    EXPECT_EQ(HandshakeBurst::stats().trims, 0U);
    EXPECT_EQ(HandshakeBurst::stats().peak, 1U);
  });
}

TEST(HandshakeBurst, ASmallBurstWaitsUntilEnoughHandshakesEnded) {
  on_fresh_thread([] {
    for (int round = 0; round < 3; ++round) {  // 3 x 16 = 48 ended: fewer than kMinEnded
      for (std::size_t i = 0; i < HandshakeBurst::kMinPeak; ++i) {
        HandshakeBurst::started();
      }
      for (std::size_t i = 0; i < HandshakeBurst::kMinPeak; ++i) {
        HandshakeBurst::ended();
      }
    }
    EXPECT_EQ(HandshakeBurst::stats().trims, 0U);
    for (std::size_t i = 0; i < HandshakeBurst::kMinPeak; ++i) {
      HandshakeBurst::started();
    }
    for (std::size_t i = 0; i < HandshakeBurst::kMinPeak; ++i) {
      HandshakeBurst::ended();
    }
    EXPECT_EQ(HandshakeBurst::stats().trims, 1U);  // 64 ended, peak 16
  });
}

TEST(HandshakeBurst, AnEndWithoutAStartIsIgnored) {
  on_fresh_thread([] {
    HandshakeBurst::ended();
    EXPECT_EQ(HandshakeBurst::stats().in_flight, 0U);
    EXPECT_EQ(HandshakeBurst::stats().ended, 0U);
  });
}

}  // namespace
}  // namespace holdfast::transport
