#pragma once
// Softmax top-k routing; Switch Transformer is k = 1 (Fedus et al. 2021, §2.1–2.2; Shazeer et al.
// 2017 for top-k). Selected by router.type = "topk".
#include <string>

#include <torch/types.h>

#include "dirmoe/router/router.h"

namespace dirmoe {

/// p = softmax(x·Wᵀ); token t goes to the k experts of largest p_t, with weight p_te (or
/// p_te / Σ_{selected} p_te when router.topk.renormalize). In training, when router.topk.jitter
/// ε > 0, the input is first multiplied elementwise by U(1−ε, 1+ε) (Switch's input jitter).
///
/// aux_losses (already scaled):
///   "topk_balance" = balance_coef·E·Σ_e f_e·P_e  (f_e: fraction of the T·k assignments to e,
///                    P_e: mean probability of e; see switch_balance_loss)
///   "topk_z"       = z_loss_coef·mean_t(logsumexp_e(logits_te)²)  (ST-MoE, Zoph et al. 2022)
/// metrics: "active_experts" (= k), "load_cv" (std/mean of tokens per expert).
/// Capacity dropping is not done here: the MoE layer drops overflow (model.capacity_factor).
class TopkRouterImpl : public RouterImpl {
 public:
  explicit TopkRouterImpl(const Config& config);
  RouterOutput forward(const torch::Tensor& x_TD, const RouterNoise& noise = {}) override;
  std::string name() const override { return "topk"; }

  torch::Tensor weight;  // (E, D) gate projection, logits = x·weightᵀ; no bias

 private:
  int64_t n_experts_;
  int64_t k_;
  TopkRouterConfig options_;
};

}  // namespace dirmoe
