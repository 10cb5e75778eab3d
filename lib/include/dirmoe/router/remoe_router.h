#pragma once
// ReLU routing with an adaptive, load-balanced L1 regulariser (ReMoE, Wang et al. 2024, §3).
// Selected by router.type = "remoe".
#include <string>

#include <torch/types.h>

#include "dirmoe/router/router.h"

namespace dirmoe {

/// R = ReLU(x·Wᵀ): no softmax and no top-k. Token t is dispatched to every expert with R_te > 0,
/// with weight R_te, so the number of active experts varies per token and is steered by λ.
///
/// aux_losses: "remoe_l1" = λ·L_reg with L_reg = E/(T²·k)·Σ_e (Σ_t R_te)·(Σ_t 1[R_te>0])
///             (gradient through Σ_t R_te only; the indicator counts are constants).
/// metrics: "lambda" (λ used in this forward), "sparsity" (fraction of R_te == 0),
///          "active_experts" (mean experts per token = E·(1 − sparsity)).
///
/// Controller: every training forward adds its measured sparsity to a running sum (a tensor, no
/// host sync). update_controller() — called once per optimiser step — takes their mean S and sets
/// λ ← λ·factor if S < 1 − k/E, else λ/factor (factor 1.2, λ0 = 1e-8). λ is the registered buffer
/// "lambda", so checkpoints carry it. Each router (layer) keeps its own λ.
class RemoeRouterImpl : public RouterImpl {
 public:
  explicit RemoeRouterImpl(const Config& config);
  RouterOutput forward(const torch::Tensor& x_TD, const RouterNoise& noise = {}) override;
  void update_controller() override;
  std::string name() const override { return "remoe"; }

  /// Target sparsity 1 − k/E.
  double target_sparsity() const { return target_sparsity_; }
  /// Mean sparsity of the training forwards since the last update_controller() (undefined if
  /// none). A data-parallel trainer may all-reduce it before update_controller() via
  /// set_measured_sparsity() so that every rank moves λ alike.
  torch::Tensor measured_sparsity() const;
  /// Replaces the pending measurement by `sparsity` (a 0-dim tensor), as one forward would.
  void set_measured_sparsity(const torch::Tensor& sparsity);
  torch::Tensor controller_measurement() const override { return measured_sparsity(); }
  void set_controller_measurement(const torch::Tensor& mean) override {
    if (mean.defined()) set_measured_sparsity(mean);
  }

  torch::Tensor weight;  // (E, D) gate projection, R = ReLU(x·weightᵀ); no bias
  torch::Tensor lambda;  // () buffer: current L1 coefficient λ (float64)

 private:
  int64_t n_experts_;
  int64_t k_;
  double target_sparsity_;
  double lambda_factor_;
  torch::Tensor sparsity_sum_;  // () float64: Σ measured sparsity since the last update
  int64_t n_measured_ = 0;      // forwards summed into sparsity_sum_
};

}  // namespace dirmoe
