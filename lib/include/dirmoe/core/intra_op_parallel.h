#pragma once
// Whether dirmoe's own at::parallel_for loops (the fused CPU experts, the CPU router noise) reach
// several threads. at::parallel_for is LibTorch header code: with its OpenMP backend (the wheel's)
// it spreads a range over threads only where the calling source was compiled with the OpenMP flags
// (CMakeLists.txt gives them to every target that includes LibTorch; docs/build.md).
#include <cstdint>

namespace dirmoe {

/// The number of distinct threads that run the items of an at::parallel_for over `items` items
/// (grain 1) in this library, with `threads` intra-op threads set for the call (the previous count
/// is restored). min(threads, items) where the library parallelises; 1 where it was built without.
int64_t parallel_for_threads_reached(int threads, int64_t items);

}  // namespace dirmoe
