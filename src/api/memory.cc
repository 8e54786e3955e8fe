// holdfast::memory_stats(): the public face of the connection-object slabs (base/slab.h).
#include "holdfast/memory.h"

#include "base/slab.h"

namespace holdfast {

MemoryStats memory_stats() {
  const base::SlabStats s = base::slab_stats();
  return {s.slots_in_use, s.bytes_in_use, s.bytes_reserved};
}

}  // namespace holdfast
