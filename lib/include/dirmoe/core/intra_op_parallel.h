#pragma once
// Whether dirmoe's own at::parallel_for loops (the fused CPU experts, the CPU router noise) reach
// several threads. at::parallel_for is LibTorch header code: with its OpenMP backend (the wheel's)
// it spreads a range over threads only where the calling source was compiled with the OpenMP flags
// (CMakeLists.txt gives them to every target that includes LibTorch; docs/build.md).
#include <cstdint>

#include <ATen/Parallel.h>
#include <ATen/ThreadLocalState.h>

namespace dirmoe {

/// at::parallel_for(begin, end, grain, fn) with fn run under the caller's LibTorch thread-local state
/// (grad mode, inference mode, the profiler's callbacks): OpenMP's threads do not inherit it, and an
/// ATen call inside fn would otherwise see another grad or inference mode than its caller's.
template <typename Fn>
void parallel_for_with_caller_state(int64_t begin, int64_t end, int64_t grain, const Fn& fn) {
  const at::ThreadLocalState caller_state;
  at::parallel_for(begin, end, grain, [&](int64_t part_begin, int64_t part_end) {
    const at::ThreadLocalStateGuard state_guard(caller_state);
    fn(part_begin, part_end);
  });
}

/// The number of distinct threads that run the items of an at::parallel_for over `items` items
/// (grain 1) in this library, with `threads` intra-op threads set for the call (the previous count
/// is restored). min(threads, items) where the library parallelises; 1 where it was built without.
int64_t parallel_for_threads_reached(int threads, int64_t items);

}  // namespace dirmoe
