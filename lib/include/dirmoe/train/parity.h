#pragma once
// Compute parity (DESIGN.md "Compute parity"): every router is configured for the same expected
// active experts k; the trainer measures E[active experts] per layer on every step after warm-up
// and flags any layer whose mean strays more than `tolerance` (relative) from k.
#include <cstdint>
#include <optional>
#include <vector>

#include <nlohmann/json.hpp>
#include <torch/types.h>

namespace dirmoe {

/// Accumulates the per-layer measured E[k] on the device (no host sync per step).
class ParityTracker {
 public:
  ParityTracker() = default;
  ParityTracker(int64_t n_layers, double target_k, double tolerance);

  /// active_experts_L: (L) measured mean active experts per token of one optimiser step.
  void add(const torch::Tensor& active_experts_L);
  int64_t steps() const { return steps_; }
  /// Per-layer mean over the recorded steps (host copy; syncs).
  std::vector<double> mean_active_experts() const;

  nlohmann::json state() const;
  void restore(const nlohmann::json& state);

  int64_t n_layers() const { return n_layers_; }
  double target_k() const { return target_k_; }
  double tolerance() const { return tolerance_; }

 private:
  int64_t n_layers_ = 0;
  double target_k_ = 1.0;
  double tolerance_ = 0.05;
  int64_t steps_ = 0;
  torch::Tensor sum_L_;  // (L) float64, Σ over steps of the measured E[k]
};

/// The parity block of summary.json:
/// {"target_k", "tolerance", "steps_measured", "layers": [{"layer", "mean_active_experts",
///  "relative_error", "flagged"}], "flagged_layers": [...], "ok": bool, "flops_per_token",
///  "total_flops"}. A layer is flagged when |mean − k|/k > tolerance. With no measured step (a run
/// shorter than its warm-up) nothing is flagged and "ok" is null.
nlohmann::json parity_report(const std::vector<double>& mean_active_experts_per_layer, double target_k,
                             double tolerance, int64_t steps_measured,
                             std::optional<double> flops_per_token = std::nullopt,
                             std::optional<double> total_flops = std::nullopt);

}  // namespace dirmoe
