// CachingCpuAllocator: large blocks come back by exact size, small ones are not cached, the cap
// holds, and tensors built on it behave like any other.
#include <catch2/catch.hpp>
#include <torch/torch.h>

#include <cstring>

#include "dirmoe/core/cpu_caching_allocator.h"

using dirmoe::CachingCpuAllocator;

TEST_CASE("a freed large block is handed to the next request of the same size", "[core][allocator]") {
  CachingCpuAllocator alloc(size_t{64} << 20);
  const size_t big = size_t{3} << 20;
  void* first = nullptr;
  {
    c10::DataPtr a = alloc.allocate(big);
    first = a.get();
    REQUIRE(first != nullptr);
    std::memset(first, 7, big);  // the block is usable
    CHECK(alloc.cached_bytes() == 0);
  }
  CHECK(alloc.cached_bytes() == big);
  {
    c10::DataPtr other_size = alloc.allocate(big + 4096);
    CHECK(other_size.get() != first);  // exact sizes only
    c10::DataPtr again = alloc.allocate(big);
    CHECK(again.get() == first);
    CHECK(alloc.cached_bytes() == 0);
  }
  CHECK(alloc.cached_bytes() == 2 * big + 4096);
  alloc.release_cached();
  CHECK(alloc.cached_bytes() == 0);
}

TEST_CASE("small blocks are not cached and the cap returns the overflow", "[core][allocator]") {
  CachingCpuAllocator alloc(size_t{5} << 20);
  { c10::DataPtr small = alloc.allocate(1000); }
  CHECK(alloc.cached_bytes() == 0);
  {
    c10::DataPtr a = alloc.allocate(size_t{3} << 20);
    c10::DataPtr b = alloc.allocate(size_t{3} << 20);
  }
  CHECK(alloc.cached_bytes() == (size_t{3} << 20));  // both would pass the 5 MiB cap
  { c10::DataPtr too_big = alloc.allocate(size_t{6} << 20); }
  CHECK(alloc.cached_bytes() == (size_t{3} << 20));  // larger than the cap: straight back, nothing evicted
}

TEST_CASE("when the cache is full, the blocks freed longest ago make room", "[core][allocator]") {
  // Sizes that stop coming (a finished model's, another token count's) must not keep a steady one out:
  // the cache is full of three one-off blocks when the steady 4 MiB block is freed.
  const size_t mib = size_t{1} << 20;
  CachingCpuAllocator alloc(10 * mib);
  for (size_t extra = 1; extra <= 3; ++extra) {
    c10::DataPtr once = alloc.allocate(3 * mib + extra * 4096);
    std::memset(once.get(), 1, 3 * mib);
  }
  const size_t one_offs = 9 * mib + 6 * 4096;
  REQUIRE(alloc.cached_bytes() == one_offs);
  { c10::DataPtr steady = alloc.allocate(4 * mib); }
  // two one-offs, the oldest, went back to the system; the steady block is cached
  CHECK(alloc.cached_bytes() == 4 * mib + 3 * mib + 3 * 4096);
  const size_t before = alloc.cached_bytes();
  c10::DataPtr steady = alloc.allocate(4 * mib);
  CHECK(before - alloc.cached_bytes() == 4 * mib);  // served from the cache
  steady.clear();
  CHECK(alloc.cached_bytes() == before);
}

TEST_CASE("tensors on the caching allocator compute like any other", "[core][allocator]") {
  CachingCpuAllocator alloc(size_t{256} << 20);
  const int64_t n = 512 * 1024;  // 2 MiB of float32
  auto make = [&](float value) {
    c10::DataPtr data = alloc.allocate(n * sizeof(float));
    auto* p = static_cast<float*>(data.get());
    for (int64_t i = 0; i < n; ++i) p[i] = value;
    c10::Storage storage(c10::Storage::use_byte_size_t(), n * sizeof(float), std::move(data), &alloc, false);
    return torch::empty({0}, torch::kFloat32).set_(storage, 0, {n}, {1});
  };
  torch::Tensor a = make(1.5f), b = make(2.0f);
  CHECK((a * b).sum().item<double>() == Approx(3.0 * n));
  a.reset();
  b.reset();
  CHECK(alloc.cached_bytes() == 2 * n * sizeof(float));
}

TEST_CASE("raw_allocate and raw_deallocate go through the cache", "[core][allocator]") {
  CachingCpuAllocator alloc(size_t{64} << 20);
  REQUIRE(alloc.raw_deleter() != nullptr);
  const size_t big = size_t{2} << 20;
  void* block = alloc.raw_allocate(big);
  REQUIRE(block != nullptr);
  std::memset(block, 3, big);
  alloc.raw_deallocate(block);
  CHECK(alloc.cached_bytes() == big);
  void* again = alloc.raw_allocate(big);
  CHECK(again == block);
  alloc.raw_deallocate(again);
  void* small = alloc.raw_allocate(100);
  alloc.raw_deallocate(small);
  CHECK(alloc.cached_bytes() == big);
}

TEST_CASE("a bf16 matmul runs with the caching allocator installed", "[core][allocator]") {
  // oneDNN's bf16 GEMM takes its scratch buffers from LibTorch's CPU allocator through raw_allocate
  dirmoe::install_cpu_caching_allocator();
  torch::manual_seed(3);
  const torch::Tensor a = torch::randn({512, 384}), b = torch::randn({384, 640});
  const torch::Tensor product = torch::mm(a.to(torch::kBFloat16), b.to(torch::kBFloat16)).to(torch::kFloat32);
  const torch::Tensor exact = torch::mm(a.to(torch::kFloat64), b.to(torch::kFloat64));
  // bf16 operands: each product term is off by up to 2^-8 relative
  CHECK(((product.to(torch::kFloat64) - exact).abs().max() / exact.abs().max()).item<double>() < 0.02);
}
