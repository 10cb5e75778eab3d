#include "dirmoe/core/cpu_caching_allocator.h"

#include <unistd.h>

#include <iterator>
#include <vector>

#include <c10/core/CPUAllocator.h>
#include <c10/core/impl/alloc_cpu.h>
#include <c10/util/Exception.h>

namespace dirmoe {
namespace {
// Deleters are plain function pointers: blocks find their allocator through this registry.
std::mutex g_registry_mutex;
std::unordered_map<void*, CachingCpuAllocator*>& owners() {
  static auto* table = new std::unordered_map<void*, CachingCpuAllocator*>();  // outlives static destructors
  return *table;
}
}  // namespace

CachingCpuAllocator::CachingCpuAllocator(size_t max_cached_bytes) : max_cached_bytes_(max_cached_bytes) {}

CachingCpuAllocator::~CachingCpuAllocator() { release_cached(); }

c10::DataPtr CachingCpuAllocator::allocate(size_t n_bytes) {
  if (n_bytes < kMinCachedBytes) {
    void* small = c10::alloc_cpu(n_bytes);
    return {small, small, &c10::free_cpu, c10::Device(c10::DeviceType::CPU)};
  }
  void* ptr = nullptr;
  {
    std::lock_guard<std::mutex> lock(mutex_);
    auto it = free_by_size_.find(n_bytes);
    if (it != free_by_size_.end()) {
      const BlockList::iterator newest = it->second.back();
      ptr = newest->ptr;
      freed_.erase(newest);
      it->second.pop_back();
      if (it->second.empty()) free_by_size_.erase(it);
      cached_bytes_ -= n_bytes;
    }
  }
  if (ptr == nullptr) ptr = c10::alloc_cpu(n_bytes);
  {
    std::lock_guard<std::mutex> lock(mutex_);
    live_size_[ptr] = n_bytes;
  }
  {
    std::lock_guard<std::mutex> lock(g_registry_mutex);
    owners()[ptr] = this;
  }
  return {ptr, ptr, &CachingCpuAllocator::deleter, c10::Device(c10::DeviceType::CPU)};
}

void CachingCpuAllocator::deleter(void* ptr) {
  CachingCpuAllocator* owner = nullptr;
  {
    std::lock_guard<std::mutex> lock(g_registry_mutex);
    auto it = owners().find(ptr);
    if (it != owners().end()) {
      owner = it->second;
      owners().erase(it);
    }
  }
  // Not registered: a block below kMinCachedBytes from c10::alloc_cpu, which reaches this deleter
  // through raw_deallocate (allocate() gives such blocks c10::free_cpu itself).
  if (owner == nullptr) {
    c10::free_cpu(ptr);
    return;
  }
  owner->free_block(ptr);
}

void CachingCpuAllocator::free_block(void* ptr) {
  std::vector<void*> to_system;  // freed after the lock is released
  {
    std::lock_guard<std::mutex> lock(mutex_);
    auto it = live_size_.find(ptr);
    TORCH_INTERNAL_ASSERT(it != live_size_.end());
    const size_t n = it->second;
    live_size_.erase(it);
    if (n > max_cached_bytes_) {
      to_system.push_back(ptr);
    } else {
      // make room by returning the blocks freed longest ago
      while (cached_bytes_ + n > max_cached_bytes_) {
        const CachedBlock oldest = freed_.front();
        auto bucket = free_by_size_.find(oldest.size);
        TORCH_INTERNAL_ASSERT(bucket != free_by_size_.end() && bucket->second.front() == freed_.begin());
        bucket->second.pop_front();
        if (bucket->second.empty()) free_by_size_.erase(bucket);
        freed_.pop_front();
        cached_bytes_ -= oldest.size;
        to_system.push_back(oldest.ptr);
      }
      freed_.push_back({ptr, n});
      free_by_size_[n].push_back(std::prev(freed_.end()));
      cached_bytes_ += n;
    }
  }
  for (void* p : to_system) c10::free_cpu(p);
}

void CachingCpuAllocator::copy_data(void* dest, const void* src, std::size_t count) const {
  default_copy_data(dest, src, count);
}

size_t CachingCpuAllocator::cached_bytes() const {
  std::lock_guard<std::mutex> lock(mutex_);
  return cached_bytes_;
}

void CachingCpuAllocator::release_cached() {
  BlockList blocks;
  {
    std::lock_guard<std::mutex> lock(mutex_);
    blocks.swap(freed_);
    free_by_size_.clear();
    cached_bytes_ = 0;
  }
  for (const CachedBlock& b : blocks) c10::free_cpu(b.ptr);
}

void install_cpu_caching_allocator(size_t max_cached_bytes) {
  static std::once_flag once;
  std::call_once(once, [&] {
    size_t limit = max_cached_bytes;
    if (limit == 0) {
      const long pages = sysconf(_SC_PHYS_PAGES);
      const long page = sysconf(_SC_PAGESIZE);
      limit = pages > 0 && page > 0 ? static_cast<size_t>(pages) * static_cast<size_t>(page) / 4 : size_t{1} << 30;
    }
    // Never destroyed: tensors may be freed during static destruction.
    static auto* allocator = new CachingCpuAllocator(limit);
    c10::SetCPUAllocator(allocator, /*priority=*/1);
  });
}

}  // namespace dirmoe
