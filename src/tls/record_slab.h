// Private: a process-wide slab of fixed-size slots for the record state of taken-over connections.
#pragma once

#include <cstddef>

namespace holdfast::tls {

/// The largest object a slot holds; record_slab_allocate() of more fails.
inline constexpr std::size_t kRecordSlotSize = 256;

/// A slot of kRecordSlotSize bytes (aligned for any scalar), taken from the process-wide slab
/// (base/slab.h: mmap'ed chunks never returned to the system), so a million idle connections leave
/// no glibc holes between them and a freed slot is reused by the next take-over. Null when `size`
/// is too large or memory is exhausted. Thread-safe (one mutex, taken once per take-over and once
/// per free).
void* record_slab_allocate(std::size_t size);

/// Returns a slot from record_slab_allocate(); the caller has already cleansed any key material in
/// it. Null is ignored. Thread-safe.
void record_slab_free(void* slot);

/// Record slots handed out and not yet freed, and bytes held in chunks of their slab size class
/// (shared with other objects of that size; for tests and benchmarks).
struct RecordSlabStats {
  std::size_t slots_in_use = 0;
  std::size_t bytes_reserved = 0;
};
/// A snapshot of the slab's counters. Thread-safe.
RecordSlabStats record_slab_stats();

}  // namespace holdfast::tls
