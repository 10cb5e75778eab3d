#pragma once
// Small routers for the model tests (the real routers live in lib/src/router/).
#include <cstdint>
#include <memory>
#include <string>

#include <torch/torch.h>

#include "dirmoe/router/router.h"

namespace dirmoe::testing {

/// Softmax top-k: p = softmax(x·Wᵀ), the k largest p are dispatched with weight p (no
/// renormalisation). Aux loss "test_sq" = coef·mean_t Σ_e p_te². Metric "active_experts".
/// The same router is written from these formulas in tests/reference/decoder_reference.py.
class SoftmaxTopkTestRouter : public RouterImpl {
 public:
  SoftmaxTopkTestRouter(int64_t d_model, int64_t n_experts, int64_t k, double init_std, double aux_coef = 0.0)
      : k_(k), aux_coef_(aux_coef) {
    gate = register_parameter("gate", torch::randn({n_experts, d_model}) * init_std);
  }
  RouterOutput forward(const torch::Tensor& x_TD, const RouterNoise& /*noise*/ = {}) override {
    const torch::Tensor probs_TE = torch::softmax(torch::matmul(x_TD, gate.to(x_TD.scalar_type()).t()), -1);
    const torch::Tensor top_TK = std::get<1>(probs_TE.topk(k_, -1));
    RouterOutput out;
    out.dispatch_mask_TE = torch::zeros_like(probs_TE, torch::kBool).scatter(1, top_TK, true);
    out.weights_TE = probs_TE * out.dispatch_mask_TE;
    if (aux_coef_ > 0) out.aux_losses["test_sq"] = aux_coef_ * probs_TE.pow(2).sum(-1).mean();
    out.metrics["active_experts"] = out.dispatch_mask_TE.sum(-1).to(torch::kFloat32).mean().detach();
    return out;
  }
  void set_step(int64_t step) override { last_step = step; }
  void update_controller() override { ++controller_updates; }
  std::string name() const override { return "test_topk"; }

  torch::Tensor gate;  // (E, D)
  int64_t last_step = -1;
  int64_t controller_updates = 0;

 private:
  int64_t k_;
  double aux_coef_;
};

/// Returns a fixed mask and weights (set by the test) whatever the input.
class FixedTestRouter : public RouterImpl {
 public:
  RouterOutput forward(const torch::Tensor& /*x_TD*/, const RouterNoise& /*noise*/ = {}) override {
    RouterOutput out;
    out.dispatch_mask_TE = mask_TE;
    out.weights_TE = weights_TE;
    return out;
  }
  std::string name() const override { return "test_fixed"; }

  torch::Tensor mask_TE;     // (T, E) bool
  torch::Tensor weights_TE;  // (T, E)
};

}  // namespace dirmoe::testing
