// The record-state slab: fixed slots carved from large chunks, recycled through a free list.
#include "tls/record_slab.h"

#include <mutex>
#include <new>

namespace holdfast::tls {
namespace {

constexpr std::size_t kSlotsPerChunk = 256;

struct FreeSlot {
  FreeSlot* next;
};

struct Slab {
  std::mutex mu;
  FreeSlot* free_list = nullptr;
  std::size_t in_use = 0;
  std::size_t chunks = 0;

  // Carves a new chunk into the free list; false when out of memory. Called with `mu` held.
  bool grow() {
    auto* chunk = static_cast<unsigned char*>(
        ::operator new (kRecordSlotSize* kSlotsPerChunk, std::align_val_t{64}, std::nothrow));
    if (chunk == nullptr) {
      return false;
    }
    for (std::size_t i = kSlotsPerChunk; i-- > 0;) {
      auto* slot = reinterpret_cast<FreeSlot*>(chunk + i * kRecordSlotSize);
      slot->next = free_list;
      free_list = slot;
    }
    ++chunks;
    return true;
  }
};

// Never destroyed: connections freed during static destruction still return their slots safely.
Slab& slab() {
  static auto* s = new Slab;
  return *s;
}

}  // namespace

void* record_slab_allocate(std::size_t size) {
  if (size > kRecordSlotSize) {
    return nullptr;
  }
  Slab& s = slab();
  std::lock_guard lock(s.mu);
  if (s.free_list == nullptr && !s.grow()) {
    return nullptr;
  }
  FreeSlot* slot = s.free_list;
  s.free_list = slot->next;
  ++s.in_use;
  return slot;
}

void record_slab_free(void* slot) {
  if (slot == nullptr) {
    return;
  }
  Slab& s = slab();
  std::lock_guard lock(s.mu);
  auto* f = static_cast<FreeSlot*>(slot);
  f->next = s.free_list;
  s.free_list = f;
  --s.in_use;
}

RecordSlabStats record_slab_stats() {
  Slab& s = slab();
  std::lock_guard lock(s.mu);
  return {s.in_use, s.chunks * kSlotsPerChunk * kRecordSlotSize};
}

}  // namespace holdfast::tls
