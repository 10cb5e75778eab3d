#include "dirmoe/router/element_kernels.h"

#include <atomic>

namespace dirmoe {
namespace element_kernels_detail {

std::atomic<bool>& enabled_flag() {
  static std::atomic<bool> enabled{true};
  return enabled;
}

}  // namespace element_kernels_detail

bool cuda_element_kernels_enabled() { return element_kernels_detail::enabled_flag().load(std::memory_order_relaxed); }

void set_cuda_element_kernels_enabled(bool enabled) {
  element_kernels_detail::enabled_flag().store(enabled, std::memory_order_relaxed);
}

bool element_passes_on(const c10::Device& device) {
  if (device.is_cpu()) return true;
#if defined(DIRMOE_CUDA_KERNELS)  // lib/CMakeLists.txt: the .cu files are built
  return device.is_cuda() && cuda_element_kernels_enabled();
#else
  return false;
#endif
}

}  // namespace dirmoe
