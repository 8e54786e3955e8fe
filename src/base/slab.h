// Private: a process-wide size-class slab for long-lived per-connection objects, apart from malloc.
#pragma once

#include <cstddef>
#include <new>

namespace holdfast::base {

/// Slots come in classes of kSlabGranule-byte steps; every slot is aligned to kSlabGranule.
inline constexpr std::size_t kSlabGranule = 16;
/// The largest size served from a slab; slab_allocate() of more falls back to ::operator new.
inline constexpr std::size_t kSlabMaxSize = 1024;
/// Each class takes its slots from chunks of this many bytes, each a mapping of its own
/// (mmap, never malloc), whose pages are touched only as slots are first handed out.
inline constexpr std::size_t kSlabChunkSize = 256 * 1024;

/// Memory for an object of `size` bytes (aligned to kSlabGranule), from the slab of its size
/// class, so that objects kept for a connection's life pack densely in pages of their own instead
/// of among the pages that the handshake's transient allocations leave behind in the malloc heap.
/// Sizes above kSlabMaxSize come from ::operator new. Throws std::bad_alloc when memory is
/// exhausted, like ::operator new. Chunks are never returned to the system (a freed slot is reused
/// by the next object of its class): the slab's footprint is its high-water mark. Thread-safe (one
/// mutex per class, taken once per call); fork()-safe (the locks are held across fork(); the
/// first call, which sets the slab up and registers the fork handlers, should not race a fork()).
void* slab_allocate(std::size_t size);

/// Frees `p` from slab_allocate(size) with the same `size`. Null is ignored. Thread-safe.
void slab_free(void* p, std::size_t size) noexcept;

/// The slab's counters (for tests and benchmarks); objects that fell back to ::operator new are
/// not counted.
struct SlabStats {
  /// Slots handed out and not yet freed, over all classes.
  std::size_t slots_in_use = 0;
  /// Bytes of those slots (each counted at its class size).
  std::size_t bytes_in_use = 0;
  /// Bytes mapped for chunks (address space; only pages ever used are resident).
  std::size_t bytes_reserved = 0;
};

/// A snapshot of the slab's counters. Thread-safe.
SlabStats slab_stats();

/// The counters of the one class that holds objects of `size` bytes (all zero above
/// kSlabMaxSize). Thread-safe.
SlabStats slab_class_stats(std::size_t size);

/// Derive a class from SlabAllocated<Class> to take its objects (and those of classes derived from
/// it) from the slab: `new Class` and std::make_unique<Class> then use slab_allocate(). Deleting
/// through a base pointer with a virtual destructor is fine: the most-derived class's deleting
/// destructor passes its own size. Types aligned beyond kSlabGranule are refused at compile time.
template <class T>
struct SlabAllocated {
  /// Takes a slot of `size` bytes (the size of the most-derived class being created).
  static void* operator new(std::size_t size) {
    static_assert(alignof(T) <= kSlabGranule, "the slab aligns slots to kSlabGranule only");
    return slab_allocate(size);
  }
  /// Returns the slot; `size` is the size given to operator new.
  static void operator delete(void* p, std::size_t size) noexcept { slab_free(p, size); }
  /// Placement new stays available (a class-scope operator new hides the global one).
  static void* operator new(std::size_t /*size*/, void* where) noexcept { return where; }
  /// The placement delete matching it: nothing to free.
  static void operator delete(void* /*p*/, void* /*where*/) noexcept {}
};

/// A standard allocator over the slab, for std::allocate_shared (control block and object in one
/// slot) and node containers whose nodes live as long as a connection. Stateless; thread-safe.
template <class T>
struct SlabAllocator {
  using value_type = T;
  SlabAllocator() = default;
  /// Rebinding copy (allocate_shared allocates its control block through it).
  template <class U>
  SlabAllocator(const SlabAllocator<U>& /*other*/) noexcept {}  // NOLINT: implicit by design
  /// Room for `n` objects of T.
  T* allocate(std::size_t n) {
    static_assert(alignof(T) <= kSlabGranule, "the slab aligns slots to kSlabGranule only");
    // T may be a pointer (a hash table's bucket array): its size is what is meant.
    return static_cast<T*>(slab_allocate(n * sizeof(T)));  // NOLINT(bugprone-sizeof-expression)
  }
  /// Frees what allocate(n) returned.
  void deallocate(T* p, std::size_t n) noexcept {
    slab_free(p, n * sizeof(T));  // NOLINT(bugprone-sizeof-expression): as in allocate()
  }
  /// All slab allocators are interchangeable.
  template <class U>
  bool operator==(const SlabAllocator<U>& /*other*/) const noexcept {
    return true;
  }
};

}  // namespace holdfast::base
