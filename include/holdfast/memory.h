// Memory holdfast keeps for its connections outside the malloc heap: for monitoring and benchmarks.
#pragma once

#include <cstddef>

namespace holdfast {

/// The objects a connection keeps for its whole life (transport, TLS engine and record state,
/// HTTP connection, pool entry) come from size-class slabs mapped apart from the malloc heap, so
/// that they pack densely instead of pinning pages among the handshakes' freed memory. malloc's own
/// statistics (mallinfo2) do not count them: add `bytes_in_use` to see a connection's whole heap.
struct MemoryStats {
  std::size_t objects_in_use = 0;  ///< slab objects allocated and not yet freed
  std::size_t bytes_in_use = 0;    ///< their bytes, each counted at its size class
  /// Address space mapped for slabs; it is never returned (freed objects are reused), and only
  /// pages ever used are resident.
  std::size_t bytes_reserved = 0;
};

/// A snapshot of the process's slab counters. Thread-safe.
MemoryStats memory_stats();

}  // namespace holdfast
