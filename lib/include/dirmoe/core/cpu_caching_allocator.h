#pragma once
// A caching allocator for large CPU tensors. A training step allocates the same activation and
// gradient sizes every step; glibc serves blocks above its mmap threshold (≤ 32 MiB) with fresh
// mappings, so without a cache every step page-faults and zero-fills them again, then unmaps them.
// Here blocks of at least kMinCachedBytes are kept on free, by exact size, and handed to the next
// request of that size (CUDA's caching allocator does the same for device memory). When the cache is
// full, the blocks freed longest ago go back to the system to make room: sizes that stopped coming (a
// finished model's, a step with another count of tokens per expert) must not keep the steady ones out.
#include <cstddef>
#include <deque>
#include <list>
#include <mutex>
#include <unordered_map>

#include <c10/core/Allocator.h>

namespace dirmoe {

class CachingCpuAllocator final : public c10::Allocator {
 public:
  static constexpr size_t kMinCachedBytes = size_t{1} << 20;  // smaller blocks: glibc as usual

  /// Keeps at most `max_cached_bytes` of free blocks; beyond that, the blocks freed longest ago go back
  /// to the system (a block larger than the whole cap goes back at once).
  explicit CachingCpuAllocator(size_t max_cached_bytes);
  ~CachingCpuAllocator() override;

  c10::DataPtr allocate(size_t n_bytes) override;
  /// raw_allocate / raw_deallocate (oneDNN's scratch buffers, e.g. a bf16 matmul's) need the deleter
  /// by itself: every block's DataPtr has the block as its context.
  c10::DeleterFnPtr raw_deleter() const override { return &CachingCpuAllocator::deleter; }
  void copy_data(void* dest, const void* src, std::size_t count) const override;

  size_t cached_bytes() const;
  /// Returns every cached block to the system.
  void release_cached();

 private:
  static void deleter(void* ptr);
  void free_block(void* ptr);

  struct CachedBlock {
    void* ptr;
    size_t size;
  };
  using BlockList = std::list<CachedBlock>;

  size_t max_cached_bytes_;
  mutable std::mutex mutex_;
  size_t cached_bytes_ = 0;
  BlockList freed_;  // the cached blocks, in the order they were freed (oldest first)
  // by size: that size's entries of freed_, oldest first (handed out newest first, evicted oldest first)
  std::unordered_map<size_t, std::deque<BlockList::iterator>> free_by_size_;
  std::unordered_map<void*, size_t> live_size_;  // blocks handed out → their size
};

/// Makes a process-wide CachingCpuAllocator LibTorch's CPU allocator (once; later calls do
/// nothing). `max_cached_bytes` 0: a quarter of the physical memory. Tensors allocated before keep
/// their own deleter. dirmoe-train, dirmoe-eval and the benchmarks call it at start.
void install_cpu_caching_allocator(size_t max_cached_bytes = 0);

}  // namespace dirmoe
