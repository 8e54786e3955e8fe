// The record-state slab: one size class of the process-wide slab (base/slab.h), counted apart.
#include "tls/record_slab.h"

#include <atomic>
#include <new>

#include "base/slab.h"

namespace holdfast::tls {
namespace {

static_assert(kRecordSlotSize <= base::kSlabMaxSize, "record slots must come from the slab");

// Counted here rather than read from the slab class: other objects may share its size class.
std::atomic<std::size_t> slots_taken{0};

}  // namespace

void* record_slab_allocate(std::size_t size) {
  if (size > kRecordSlotSize) {
    return nullptr;
  }
  void* slot = nullptr;
  try {
    slot = base::slab_allocate(kRecordSlotSize);
  } catch (const std::bad_alloc&) {
    return nullptr;  // the caller keeps the connection on OpenSSL's record path
  }
  slots_taken.fetch_add(1, std::memory_order_relaxed);
  return slot;
}

void record_slab_free(void* slot) {
  if (slot == nullptr) {
    return;
  }
  base::slab_free(slot, kRecordSlotSize);
  slots_taken.fetch_sub(1, std::memory_order_relaxed);
}

RecordSlabStats record_slab_stats() {
  return {slots_taken.load(std::memory_order_relaxed),
          base::slab_class_stats(kRecordSlotSize).bytes_reserved};
}

}  // namespace holdfast::tls
