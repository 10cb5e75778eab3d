#pragma once
// Expert load over training: the tokens each layer dispatched to each expert, summed on the device
// over the steps after warm-up, so that summary.json can say plainly when a layer's routing leans on
// few experts (load max/mean above a threshold), as dirmoe-analyze does for evaluation routing.
#include <cstdint>
#include <vector>

#include <nlohmann/json.hpp>
#include <torch/types.h>

namespace dirmoe {

class LoadTracker {
 public:
  LoadTracker() = default;
  LoadTracker(int64_t n_layers, int64_t n_experts, double threshold);

  /// tokens_per_expert_L: one (E) count tensor per layer for one optimiser step.
  void add(const std::vector<torch::Tensor>& tokens_per_expert_L);
  int64_t steps() const { return steps_; }

  /// {"threshold", "steps_measured", "layers": [{"layer", "load_max_over_mean", "load_cv", "flagged"}],
  ///  "flagged_layers", "ok"}; with no measured step the figures are null and "ok" is null.
  nlohmann::json report() const;

  nlohmann::json state() const;
  /// Restores state() output; an empty object (a checkpoint written before the tracker existed)
  /// starts the sums afresh.
  void restore(const nlohmann::json& state);

 private:
  int64_t n_layers_ = 0;
  int64_t n_experts_ = 0;
  double threshold_ = 2.0;
  int64_t steps_ = 0;
  torch::Tensor sum_LE_;  // (L, E) float64, Σ over steps of the dispatched tokens
};

}  // namespace dirmoe
