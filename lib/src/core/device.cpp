#include "dirmoe/core/device.h"

#include <torch/cuda.h>

#include <fmt/format.h>

#include "dirmoe/core/error.h"

namespace dirmoe {

torch::Device resolve_device(const std::string& wanted, const std::string& setting, int64_t local_rank) {
  auto local_cuda = [&] {
    return torch::Device(torch::kCUDA, static_cast<c10::DeviceIndex>(local_rank % torch::cuda::device_count()));
  };
  if (wanted == "cpu") return torch::kCPU;
  if (wanted == "auto") return torch::cuda::is_available() ? local_cuda() : torch::Device(torch::kCPU);
  if (wanted == "cuda" || wanted.rfind("cuda:", 0) == 0) {
    if (!torch::cuda::is_available()) {
      throw ConfigError(fmt::format("{} = \"{}\" but CUDA is not available here; set {} to cpu (or auto)", setting,
                                    wanted, setting));
    }
    if (wanted == "cuda") return local_cuda();
    try {
      return torch::Device(wanted);
    } catch (const c10::Error&) {
      // falls through to the message below
    }
  }
  throw ConfigError(fmt::format("{} = \"{}\": expected auto, cpu, cuda or cuda:N", setting, wanted));
}

}  // namespace dirmoe
