// The size-class slab: per-class free lists over mmap'ed chunks carved with a bump pointer.
#include "base/slab.h"

#include <pthread.h>
#include <sys/mman.h>

#include <array>
#include <mutex>

#if defined(__SANITIZE_ADDRESS__)
#define HOLDFAST_SLAB_ASAN 1
#elif defined(__has_feature)
#if __has_feature(address_sanitizer)
#define HOLDFAST_SLAB_ASAN 1
#endif
#endif
#ifdef HOLDFAST_SLAB_ASAN
#include <sanitizer/asan_interface.h>
#include <sanitizer/lsan_interface.h>
#endif

namespace holdfast::base {
namespace {

constexpr std::size_t kClasses = kSlabMaxSize / kSlabGranule;

// Under ASan, free and never-used slot bytes are poisoned so that a use after free of a
// connection object is still reported, as it would be for malloc'ed memory.
void poison(void* p, std::size_t n) {
#ifdef HOLDFAST_SLAB_ASAN
  __asan_poison_memory_region(p, n);
#else
  (void)p;
  (void)n;
#endif
}

// LeakSanitizer scans the malloc heap, stacks and globals, not private mappings: a chunk is
// registered as a root region, or the heap blocks that live objects in it point to (an SSL, a
// buffer) would be reported as leaked. Slab objects themselves are not leak-checked.
void register_chunk(void* chunk, std::size_t n) {
#ifdef HOLDFAST_SLAB_ASAN
  __lsan_register_root_region(chunk, n);
#else
  (void)chunk;
  (void)n;
#endif
}

void unpoison(void* p, std::size_t n) {
#ifdef HOLDFAST_SLAB_ASAN
  __asan_unpoison_memory_region(p, n);
#else
  (void)p;
  (void)n;
#endif
}

struct FreeSlot {
  FreeSlot* next;
};

struct SizeClass {
  std::mutex mu;
  FreeSlot* free_list = nullptr;  // freed slots, most recently freed first
  unsigned char* bump = nullptr;  // the newest chunk's first never-used slot
  unsigned char* bump_end = nullptr;
  std::size_t in_use = 0;
  std::size_t chunks = 0;

  // Maps a new chunk for slots of `slot` bytes; false when out of memory. Called with `mu` held.
  // Its pages stay untouched (not resident) until the bump pointer reaches them.
  bool grow(std::size_t slot) {
    void* m =
        mmap(nullptr, kSlabChunkSize, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (m == MAP_FAILED) {
      return false;
    }
    poison(m, kSlabChunkSize);
    register_chunk(m, kSlabChunkSize);
    bump = static_cast<unsigned char*>(m);
    bump_end = bump + kSlabChunkSize / slot * slot;
    ++chunks;
    return true;
  }

  // A slot of `slot` bytes, a freed one first (warm, packs the live objects); null when out of
  // memory. Called with `mu` held.
  void* take(std::size_t slot) {
    if (free_list != nullptr) {
      FreeSlot* f = free_list;
      unpoison(f, sizeof(FreeSlot));
      free_list = f->next;
      ++in_use;
      return f;
    }
    if (bump == bump_end && !grow(slot)) {
      return nullptr;
    }
    void* p = bump;
    bump += slot;
    ++in_use;
    return p;
  }

  // Puts `p` (a slot of `slot` bytes) on the free list. Called with `mu` held.
  void give_back(void* p, std::size_t slot) {
    auto* f = static_cast<FreeSlot*>(p);
    unpoison(f, sizeof(FreeSlot));
    f->next = free_list;
    free_list = f;
    poison(p, slot);
    --in_use;
  }
};

struct Slab {
  std::array<SizeClass, kClasses> classes;
};

Slab* the_slab = nullptr;

// fork() in one thread while another holds a class lock would leave the child's copy locked
// forever: hold every lock across fork(), as malloc does with its arenas.
void lock_all() {
  for (SizeClass& c : the_slab->classes) {
    c.mu.lock();
  }
}

void unlock_all() {
  for (SizeClass& c : the_slab->classes) {
    c.mu.unlock();
  }
}

// Never destroyed: objects freed during static destruction still return their slots safely.
Slab& slab() {
  static Slab* s = [] {
    the_slab = new Slab;
    pthread_atfork(&lock_all, &unlock_all, &unlock_all);
    return the_slab;
  }();
  return *s;
}

std::size_t class_index(std::size_t size) { return size == 0 ? 0 : (size - 1) / kSlabGranule; }

std::size_t slot_size(std::size_t index) { return (index + 1) * kSlabGranule; }

SlabStats stats_of(SizeClass& c, std::size_t slot) {
  std::lock_guard lock(c.mu);
  return {c.in_use, c.in_use * slot, c.chunks * kSlabChunkSize};
}

}  // namespace

void* slab_allocate(std::size_t size) {
  if (size > kSlabMaxSize) {
    return ::operator new(size);
  }
  const std::size_t index = class_index(size);
  const std::size_t slot = slot_size(index);
  SizeClass& c = slab().classes[index];
  void* p = nullptr;
  {
    std::lock_guard lock(c.mu);
    p = c.take(slot);
  }
  if (p == nullptr) {
    throw std::bad_alloc();  // as ::operator new does: a constructor must not run on null
  }
  poison(p, slot);  // only `size` bytes are the object's: ASan reports an overflow into the rest
  unpoison(p, size);
  return p;
}

void slab_free(void* p, std::size_t size) noexcept {
  if (p == nullptr) {
    return;
  }
  if (size > kSlabMaxSize) {
    ::operator delete(p);
    return;
  }
  const std::size_t index = class_index(size);
  SizeClass& c = slab().classes[index];
  std::lock_guard lock(c.mu);
  c.give_back(p, slot_size(index));
}

SlabStats slab_stats() {
  SlabStats total;
  Slab& s = slab();
  for (std::size_t i = 0; i < kClasses; ++i) {
    const SlabStats one = stats_of(s.classes[i], slot_size(i));
    total.slots_in_use += one.slots_in_use;
    total.bytes_in_use += one.bytes_in_use;
    total.bytes_reserved += one.bytes_reserved;
  }
  return total;
}

SlabStats slab_class_stats(std::size_t size) {
  if (size > kSlabMaxSize) {
    return {};
  }
  const std::size_t index = class_index(size);
  return stats_of(slab().classes[index], slot_size(index));
}

}  // namespace holdfast::base
