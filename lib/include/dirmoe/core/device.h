#pragma once
// The torch::Device a device setting names, shared by dirmoe-train (train.device), dirmoe-eval and
// dirmoe-analyze (--device), so that all three accept the same spellings and say the same thing
// when CUDA is asked for where there is none.
#include <cstdint>
#include <string>

#include <torch/types.h>

namespace dirmoe {

/// "cpu" → CPU; "cuda" → CUDA device `local_rank` mod the device count; "cuda:N" → that device;
/// "auto" → as "cuda" when CUDA is available, else CPU. Throws ConfigError naming `setting` (the
/// config field or option the value came from, e.g. "train.device" or "--device") when CUDA is
/// asked for but not available, or the value is none of these.
torch::Device resolve_device(const std::string& wanted, const std::string& setting, int64_t local_rank = 0);

}  // namespace dirmoe
