#pragma once
// Batch-level router losses over the whole batch when it is split over processes (docs/parallel.md
// "Batch-level losses"). A loss such as the Switch balance loss E·Σ_e f_e·P_e is a function of means
// over the batch's tokens (f_e, P_e), not a mean of per-token terms, so the mean of per-process
// losses is not the loss of the global batch. Routers write every such mean over tokens m as
// batch_mean(m): its value is the mean of m over the processes (equal tokens per process: the mean
// over the global batch), and its gradient is the identity. Every process then holds the global
// batch's loss, and since the trainer averages gradients over processes, the parameters get
// (1/W)·Σ_p ∂L/∂m·∂m_p/∂θ = ∂L/∂m·∂m/∂θ: the global batch's gradient.
#include <memory>

#include <torch/types.h>

namespace dirmoe {

/// Where the processes' values meet: the trainer's implementation all-reduces over its processes.
class BatchMeanReducer {
 public:
  virtual ~BatchMeanReducer() = default;
  /// Replaces `values` (detached) by their mean over the processes, in place.
  virtual void mean_(torch::Tensor& values) = 0;
};

/// local + sg(mean over processes of local − local): the global mean forward, identity backward.
/// Without a reducer (one process) `local` itself.
torch::Tensor batch_mean(BatchMeanReducer* reducer, const torch::Tensor& local);

}  // namespace dirmoe
