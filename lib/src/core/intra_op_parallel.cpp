#include "dirmoe/core/intra_op_parallel.h"

#include <mutex>
#include <set>
#include <thread>

#include <ATen/Parallel.h>

namespace dirmoe {

int64_t parallel_for_threads_reached(int threads, int64_t items) {
  const int threads_before = at::get_num_threads();
  at::set_num_threads(threads);
  std::mutex mutex;
  std::set<std::thread::id> seen;
  at::parallel_for(0, items, /*grain_size=*/1, [&](int64_t, int64_t) {
    const std::lock_guard<std::mutex> lock(mutex);
    seen.insert(std::this_thread::get_id());
  });
  at::set_num_threads(threads_before);
  return static_cast<int64_t>(seen.size());
}

}  // namespace dirmoe
