// Unit tests of the per-thread cipher-context cache of the own TLS 1.3 record layer.
#include <cstdint>
#include <vector>

#include <gtest/gtest.h>

#include "tls/record.h"

namespace holdfast::tls {
namespace {

// Seals one small record with `keys` on this thread, which keys (or reuses) a cached context.
void seal_one(DirectionKeys* keys) {
  const std::uint8_t content[] = {'h', 'i'};
  std::vector<std::uint8_t> out;
  ASSERT_TRUE(seal_record(AeadSuite::aes_128_gcm, keys, kApplicationData, content, &out));
}

// 64 busy connections on one loop thread: each direction's key keeps its schedule while the
// others are used (a direct-mapped cache of 64 re-keyed ~17 % of the records here).
TEST(TlsRecordCipherCache, SixtyFourBusyKeysAllStayCached) {
  constexpr std::size_t kBusy = 64;
  drop_thread_key_schedules();
  std::vector<DirectionKeys> keys(kBusy);
  for (std::size_t i = 0; i < kBusy; ++i) {
    std::vector<std::uint8_t> secret(secret_len(AeadSuite::aes_128_gcm),
                                     static_cast<std::uint8_t>(i));
    ASSERT_TRUE(install_secret(AeadSuite::aes_128_gcm, secret, &keys[i]));
    // Consecutive ids, as for connections set up one after the other on a loop.
    ASSERT_TRUE(i == 0 || keys[i].key_id == keys[i - 1].key_id + 1);
  }
  for (int round = 0; round < 2; ++round) {
    for (DirectionKeys& k : keys) {
      seal_one(&k);
    }
  }
  std::size_t cached = 0;
  for (const DirectionKeys& k : keys) {
    cached += key_schedule_cached(k.key_id) ? 1 : 0;
  }
  EXPECT_EQ(cached, kBusy);
  for (DirectionKeys& k : keys) {
    cleanse(&k);
    EXPECT_FALSE(key_schedule_cached(k.key_id));
  }
}

// Past the cache's size the oldest keys lose their schedules, and sealing with them still works
// (they are keyed again): the per-thread memory stays bounded.
TEST(TlsRecordCipherCache, MoreBusyKeysThanTheCacheHoldsStillSealCorrectly) {
  constexpr std::size_t kBusy = 300;  // over 128 contexts per suite and direction
  drop_thread_key_schedules();
  std::vector<DirectionKeys> keys(kBusy);
  std::vector<std::uint8_t> secret(secret_len(AeadSuite::aes_128_gcm), 9);
  for (DirectionKeys& k : keys) {
    ASSERT_TRUE(install_secret(AeadSuite::aes_128_gcm, secret, &k));
  }
  for (DirectionKeys& k : keys) {
    seal_one(&k);
  }
  std::size_t cached = 0;
  for (const DirectionKeys& k : keys) {
    cached += key_schedule_cached(k.key_id) ? 1 : 0;
  }
  EXPECT_LE(cached, 128u);
  // Same secret, same sequence number: a re-keyed context must seal exactly as a fresh one.
  std::vector<std::uint8_t> first;
  std::vector<std::uint8_t> again;
  const std::uint8_t content[] = {'o', 'k'};
  ASSERT_TRUE(seal_record(AeadSuite::aes_128_gcm, &keys[0], kApplicationData, content, &first));
  ASSERT_TRUE(seal_record(AeadSuite::aes_128_gcm, &keys[1], kApplicationData, content, &again));
  EXPECT_EQ(first, again);
  for (DirectionKeys& k : keys) {
    cleanse(&k);
  }
  drop_thread_key_schedules();
}

}  // namespace
}  // namespace holdfast::tls
