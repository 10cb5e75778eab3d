// at::parallel_for is header code: with LibTorch's OpenMP backend it runs its range on several
// threads only in code compiled with the OpenMP flags (CMakeLists.txt gives them to every target
// that includes LibTorch). Without them it runs the whole range on the calling thread, as dirmoe's
// own parallel loops (the fused CPU experts, the CPU router noise) once did. Checked in the library
// (parallel_for_threads_reached is compiled into it) and in this file's own compile.
#include <catch2/catch.hpp>
#include <torch/torch.h>

#include <ATen/Parallel.h>

#include <cstdlib>
#include <cstring>
#include <mutex>
#include <set>
#include <string>
#include <thread>

#include "dirmoe/core/intra_op_parallel.h"

namespace {

/// OpenMP may hand out fewer threads than asked when the user allows it to (OMP_DYNAMIC) or caps
/// them (OMP_THREAD_LIMIT): then the count says nothing about the build.
bool environment_limits_threads() {
  const char* dynamic = std::getenv("OMP_DYNAMIC");
  const char* limit = std::getenv("OMP_THREAD_LIMIT");
  return (dynamic != nullptr && (std::strcmp(dynamic, "true") == 0 || std::strcmp(dynamic, "TRUE") == 0 ||
                                 std::strcmp(dynamic, "1") == 0)) ||
         (limit != nullptr && std::string(limit) != "" && std::atoi(limit) < 3);
}

}  // namespace

TEST_CASE("at::parallel_for spreads its range over the intra-op threads", "[core][parallel]") {
  if (environment_limits_threads()) {
    WARN("OMP_DYNAMIC or OMP_THREAD_LIMIT is set: the thread count is up to OpenMP, not checked");
    return;
  }
  INFO("at::get_parallel_info(): " << at::get_parallel_info());
  // the library's own compile
  CHECK(dirmoe::parallel_for_threads_reached(2, 2) == 2);
  CHECK(dirmoe::parallel_for_threads_reached(3, 2) == 2);
  CHECK(dirmoe::parallel_for_threads_reached(3, 7) == 3);
  CHECK(dirmoe::parallel_for_threads_reached(1, 7) == 1);

  // this test's compile (the same flags reach the apps, tests and benchmarks)
  const int threads_before = torch::get_num_threads();
  torch::set_num_threads(2);
  std::mutex mutex;
  std::set<std::thread::id> seen;
  bool in_region = true;
  at::parallel_for(0, 2, /*grain_size=*/1, [&](int64_t, int64_t) {
    const std::lock_guard<std::mutex> lock(mutex);
    seen.insert(std::this_thread::get_id());
    in_region = in_region && at::in_parallel_region();
  });
  torch::set_num_threads(threads_before);
  CHECK(seen.size() == 2);
  CHECK(in_region);
}
