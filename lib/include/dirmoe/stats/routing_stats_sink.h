#pragma once
// Observer the MoE layers report routing decisions to (DESIGN.md "Routing statistics"). Routers
// and layers know nothing of HDF5: the app passes a sink in, the sink accumulates, a writer saves.
#include <cstdint>

#include <torch/types.h>

namespace dirmoe {

class RoutingStatsSink {
 public:
  virtual ~RoutingStatsSink() = default;
  /// Called by layer `layer` after routing T tokens. Tensors may live on the GPU; a sink keeps its
  /// accumulators on the same device and copies to the host only when asked.
  ///   dispatch_mask_TE: (T, E) bool, weights_TE: (T, E) float (detached by the caller).
  virtual void record(int64_t layer, const torch::Tensor& dispatch_mask_TE, const torch::Tensor& weights_TE) = 0;
};

}  // namespace dirmoe
