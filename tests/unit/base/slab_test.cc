// Tests for the size-class slab (base/slab.h): reuse, classes, fallback, threads, fork, opt-in.
#include "base/slab.h"

#include <malloc.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <array>
#include <atomic>
#include <cstdint>
#include <cstring>
#include <memory>
#include <set>
#include <thread>
#include <vector>

#include <gtest/gtest.h>

#if defined(__SANITIZE_ADDRESS__)
#define HOLDFAST_TEST_ASAN 1
#elif defined(__has_feature)
#if __has_feature(address_sanitizer)
#define HOLDFAST_TEST_ASAN 1
#endif
#endif
#ifdef HOLDFAST_TEST_ASAN
#include <sanitizer/asan_interface.h>
#endif

namespace holdfast::base {
namespace {

TEST(Slab, FreedSlotIsReusedByTheNextAllocationOfItsClass) {
  void* p = slab_allocate(100);
  slab_free(p, 100);
  void* q = slab_allocate(112);  // 97..112 bytes share a class
  EXPECT_EQ(q, p);
  slab_free(q, 112);
}

TEST(Slab, DistinctSizeClassesDoNotShareSlots) {
  void* p = slab_allocate(112);
  slab_free(p, 112);
  void* q = slab_allocate(113);  // the next class up
  EXPECT_NE(q, p);
  void* r = slab_allocate(112);
  EXPECT_EQ(r, p) << "the 112-byte class kept its freed slot";
  slab_free(q, 113);
  slab_free(r, 112);
}

TEST(Slab, SlotsAreAlignedAndDisjoint) {
  constexpr std::size_t kSize = 40;
  std::vector<unsigned char*> slots;
  for (int i = 0; i < 3000; ++i) {  // more than one chunk of 48-byte slots
    auto* p = static_cast<unsigned char*>(slab_allocate(kSize));
    EXPECT_EQ(reinterpret_cast<std::uintptr_t>(p) % kSlabGranule, 0U);
    std::memset(p, i & 0xff, kSize);
    slots.push_back(p);
  }
  for (std::size_t i = 0; i < slots.size(); ++i) {
    for (std::size_t b = 0; b < kSize; ++b) {
      ASSERT_EQ(slots[i][b], i & 0xff) << "slot " << i << " was overwritten by another";
    }
  }
  EXPECT_EQ(std::set<unsigned char*>(slots.begin(), slots.end()).size(), slots.size());
  for (unsigned char* p : slots) {
    slab_free(p, kSize);
  }
}

TEST(Slab, StatsCountSlotsBytesAndChunks) {
  const SlabStats before = slab_stats();
  const SlabStats class_before = slab_class_stats(200);
  void* a = slab_allocate(200);
  void* b = slab_allocate(195);  // 193..208 bytes: the class of 200
  const SlabStats during = slab_stats();
  EXPECT_EQ(during.slots_in_use, before.slots_in_use + 2);
  EXPECT_EQ(during.bytes_in_use, before.bytes_in_use + 2 * 208);
  EXPECT_EQ(slab_class_stats(193).slots_in_use, class_before.slots_in_use + 2);
  EXPECT_GE(slab_class_stats(200).bytes_reserved, kSlabChunkSize);
  EXPECT_EQ(during.bytes_reserved % kSlabChunkSize, 0U);
  slab_free(a, 200);
  slab_free(b, 195);
  EXPECT_EQ(slab_stats().slots_in_use, before.slots_in_use);
  EXPECT_EQ(slab_stats().bytes_reserved, during.bytes_reserved) << "chunks are kept";
}

TEST(Slab, SizesAboveTheLargestClassFallBackToOperatorNew) {
  const SlabStats before = slab_stats();
  void* p = slab_allocate(kSlabMaxSize + 1);
  ASSERT_NE(p, nullptr);
  std::memset(p, 0xab, kSlabMaxSize + 1);
  EXPECT_EQ(slab_stats().slots_in_use, before.slots_in_use);
  EXPECT_EQ(slab_class_stats(kSlabMaxSize + 1).slots_in_use, 0U);
  slab_free(p, kSlabMaxSize + 1);
  void* edge = slab_allocate(kSlabMaxSize);
  EXPECT_EQ(slab_stats().slots_in_use, before.slots_in_use + 1) << "the largest class is a slab";
  slab_free(edge, kSlabMaxSize);
}

TEST(Slab, ChunksDoNotComeFromTheMallocHeap) {
  (void)slab_stats();  // the slab's one-off bookkeeping is malloc'ed on first use
  std::vector<void*> slots;
  slots.reserve(1000);
  const std::size_t heap_reserved = mallinfo2().uordblks;
  for (int i = 0; i < 1000; ++i) {
    slots.push_back(slab_allocate(512));
  }
  EXPECT_LT(mallinfo2().uordblks, heap_reserved + 4096) << "512 KB of slots left the heap alone";
  for (void* p : slots) {
    slab_free(p, 512);
  }
}

TEST(Slab, ThreadsAllocateAndFreeConcurrently) {
  constexpr int kThreads = 4;
  constexpr int kPerThread = 2000;
  const SlabStats before = slab_stats();
  std::atomic<int> corrupted{0};
  std::vector<std::thread> threads;
  for (int t = 0; t < kThreads; ++t) {
    threads.emplace_back([t, &corrupted] {
      std::vector<int*> mine;
      for (int round = 0; round < 3; ++round) {
        for (int i = 0; i < kPerThread; ++i) {
          auto* p = static_cast<int*>(slab_allocate(sizeof(int) * 8));
          std::fill(p, p + 8, t * kPerThread + i);
          mine.push_back(p);
        }
        for (std::size_t i = 0; i < mine.size(); ++i) {
          const int want = t * kPerThread + static_cast<int>(i);
          corrupted += static_cast<int>(
              std::count_if(mine[i], mine[i] + 8, [want](int v) { return v != want; }));
          slab_free(mine[i], sizeof(int) * 8);
        }
        mine.clear();
      }
    });
  }
  for (std::thread& t : threads) {
    t.join();
  }
  EXPECT_EQ(corrupted.load(), 0) << "two threads were handed the same slot";
  EXPECT_EQ(slab_stats().slots_in_use, before.slots_in_use);
}

TEST(Slab, ChildOfForkAllocatesWhileParentThreadsHeldLocks) {
  (void)slab_stats();  // set up before the thread starts: a fork mid-set-up is not what is tested
  std::atomic<bool> stop{false};
  std::thread churn([&stop] {
    for (int i = 0; i < 10'000'000 && !stop.load(); ++i) {
      slab_free(slab_allocate(64), 64);
    }
  });
  bool all_exited_cleanly = true;
  for (int f = 0; f < 20; ++f) {
    const pid_t pid = fork();
    if (pid == 0) {
      alarm(10);  // a lock copied while held would hang the child: the alarm kills it instead
      void* p = slab_allocate(64);
      slab_free(p, 64);
      _exit(p != nullptr ? 0 : 1);
    }
    ASSERT_GT(pid, 0);
    int status = 0;
    ASSERT_EQ(waitpid(pid, &status, 0), pid);
    all_exited_cleanly = all_exited_cleanly && WIFEXITED(status) && WEXITSTATUS(status) == 0;
  }
  stop = true;
  churn.join();
  EXPECT_TRUE(all_exited_cleanly);
}

struct Base : SlabAllocated<Base> {
  virtual ~Base() = default;
  std::uint64_t base_field = 1;
};

struct Derived final : Base {
  ~Derived() override { *destroyed = true; }
  std::array<std::uint64_t, 40> payload{};  // 320 bytes more: another size class than Base
  bool* destroyed = nullptr;
};

TEST(SlabAllocated, NewTakesTheMostDerivedSizeAndDeleteThroughBaseReturnsIt) {
  const std::size_t base_class = slab_class_stats(sizeof(Base)).slots_in_use;
  const std::size_t derived_class = slab_class_stats(sizeof(Derived)).slots_in_use;
  bool destroyed = false;
  auto* d = new Derived;
  d->destroyed = &destroyed;
  Base* b = d;
  EXPECT_EQ(slab_class_stats(sizeof(Derived)).slots_in_use, derived_class + 1);
  EXPECT_EQ(slab_class_stats(sizeof(Base)).slots_in_use, base_class);
  delete b;
  EXPECT_TRUE(destroyed);
  EXPECT_EQ(slab_class_stats(sizeof(Derived)).slots_in_use, derived_class)
      << "the sized delete got the derived size";
}

TEST(SlabAllocated, MakeUniqueAndPlacementNewWork) {
  const std::size_t in_use = slab_class_stats(sizeof(Base)).slots_in_use;
  {
    auto owned = std::make_unique<Base>();
    EXPECT_EQ(owned->base_field, 1U);
    EXPECT_EQ(slab_class_stats(sizeof(Base)).slots_in_use, in_use + 1);
  }
  EXPECT_EQ(slab_class_stats(sizeof(Base)).slots_in_use, in_use);
  alignas(Base) unsigned char storage[sizeof(Base)];
  Base* placed = new (storage) Base;
  EXPECT_EQ(static_cast<void*>(placed), static_cast<void*>(storage));
  placed->~Base();
  EXPECT_EQ(slab_class_stats(sizeof(Base)).slots_in_use, in_use);
}

#ifdef HOLDFAST_TEST_ASAN
TEST(Slab, FreedSlotsArePoisonedUnderAddressSanitizer) {
  auto* p = static_cast<unsigned char*>(slab_allocate(48));
  EXPECT_EQ(__asan_address_is_poisoned(p), 0);
  EXPECT_EQ(__asan_address_is_poisoned(p + 47), 0);
  slab_free(p, 48);
  EXPECT_NE(__asan_address_is_poisoned(p), 0) << "a use after free would go unreported";
  EXPECT_NE(__asan_address_is_poisoned(p + 40), 0);
}
#endif

}  // namespace
}  // namespace holdfast::base
