#pragma once
// Where training batches come from: a resumable stream of (B, seq_len+1) int64 token windows.
// The data reader's WindowSampler is the real one; tests use a synthetic source.
#include <cstdint>

#include <nlohmann/json.hpp>
#include <torch/types.h>

namespace dirmoe {

class BatchSource {
 public:
  virtual ~BatchSource() = default;
  /// (batch_size, seq_len + 1) int64 tokens on the CPU: inputs are [:, :-1], targets [:, 1:].
  virtual torch::Tensor next_batch(int64_t batch_size) = 0;
  /// Position of the stream; restore(state()) continues with the same batches.
  virtual nlohmann::json state() const = 0;
  virtual void restore(const nlohmann::json& state) = 0;
};

}  // namespace dirmoe
