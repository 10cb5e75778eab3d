#pragma once
// Runs an independent Python/torch reference (tests/reference/*.py, in the project venv) on
// tensors from a C++ test and returns the tensors it computed. Exchange format: a dict of named
// tensors saved with torch::pickle_save (read by torch.load) and, back, torch.save of a dict
// (read by torch::pickle_load). The reference never sees the C++ code, only the inputs.
#include <map>
#include <string>

#include <torch/types.h>

namespace dirmoe::testing {

using TensorMap = std::map<std::string, torch::Tensor>;

/// Runs `python tests/reference/<script> IN.pt OUT.pt` with `inputs` (and scalar options passed
/// as 0-dim tensors). Throws std::runtime_error with the script's output if it fails.
TensorMap run_python_reference(const std::string& script, const TensorMap& inputs);

/// True when the venv's python and torch are present (they are after `make setup`).
bool python_reference_available();

}  // namespace dirmoe::testing
