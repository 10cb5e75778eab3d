// at::parallel_for is header code: with LibTorch's OpenMP backend it runs its range on several
// threads only in code compiled with the OpenMP flags (CMakeLists.txt gives them to every target
// that includes LibTorch, this test's too). Without them it runs the whole range on the calling
// thread, as dirmoe's own parallel loops (the fused CPU experts, the CPU router noise) once did.
#include <catch2/catch.hpp>
#include <torch/torch.h>

#include <ATen/Parallel.h>

#include <mutex>
#include <set>
#include <thread>

TEST_CASE("at::parallel_for spreads its range over the intra-op threads", "[core][parallel]") {
  const int threads_before = torch::get_num_threads();
  torch::set_num_threads(2);
  std::mutex mutex;
  std::set<std::thread::id> seen;
  bool in_region = true;
  at::parallel_for(0, 2, /*grain_size=*/1, [&](int64_t begin, int64_t end) {
    const std::lock_guard<std::mutex> lock(mutex);
    seen.insert(std::this_thread::get_id());
    in_region = in_region && at::in_parallel_region();
    (void)begin;
    (void)end;
  });
  torch::set_num_threads(threads_before);
  INFO("at::get_parallel_info(): " << at::get_parallel_info());
  CHECK(seen.size() == 2);
  CHECK(in_region);
}
