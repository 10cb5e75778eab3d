#pragma once
// The safetensors file format (https://huggingface.co/docs/safetensors): an 8-byte little-endian
// header length N, a JSON header of N bytes {"name": {"dtype", "shape", "data_offsets": [b, e]},
// "__metadata__": {str: str}} (padded with spaces to a multiple of 8), then the raw little-endian
// tensor bytes, each tensor at [b, e) of the data section, in header order.
#include <filesystem>
#include <map>
#include <string>
#include <utility>
#include <vector>

#include <torch/types.h>

namespace dirmoe::eval {

using NamedTensors = std::vector<std::pair<std::string, torch::Tensor>>;

/// Writes `tensors` (any of F64/F32/F16/BF16/I64/I32/I16/I8/U8/BOOL, any device) atomically.
/// Names must be unique. Throws IoError on failure.
void write_safetensors(const std::filesystem::path& path, const NamedTensors& tensors,
                       const std::map<std::string, std::string>& metadata = {});

/// Reads every tensor of a safetensors file (CPU). Throws IoError naming the file if malformed.
std::map<std::string, torch::Tensor> read_safetensors(const std::filesystem::path& path,
                                                      std::map<std::string, std::string>* metadata = nullptr);

}  // namespace dirmoe::eval
