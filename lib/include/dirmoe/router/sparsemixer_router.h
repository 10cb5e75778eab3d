#pragma once
// SparseMixer-v2 routing as used by GRIN MoE (Liu et al. 2024, "GRIN: GRadient-INformed MoE",
// §2; DESIGN.md "Routers"). Selected by router.type = "sparsemixer"; k ∈ {1, 2}.
#include <string>

#include <torch/types.h>

#include "dirmoe/router/router.h"

namespace dirmoe {

/// The combine weight of one SparseMixer-v2 choice, with GRIN's custom backward.
///
/// Forward: w_t = scale_t · p_t[D_t], where p_TE is the masked softmax of this round (zero on
/// masked experts), D_T1 the chosen expert and scale_T1 ∈ {1, 1/3}.
/// Backward (a torch::autograd::Function): with ĝ_t = (∂L/∂w_t)·p_t[D_t] — the upstream gradient
/// of the weight times the UNscaled chosen probability; the scale does not enter —
///   ∂L/∂scores_te = −p_te·ĝ_t + 1[e = D_t]·ĝ_t.
/// This is ∂p_t[D_t]/∂scores_t applied to ∂L/∂w_t, i.e. the gradient of the unscaled weight; it
/// flows only to scores_TE (the raw router logits), never through probs_TE.
/// Shapes: scores_TE, probs_TE (T, E); choice_T1 (T, 1) int64; scale_T1 (T, 1). Returns (T, 1).
torch::Tensor sparsemixer_choice_weight(const torch::Tensor& scores_TE, const torch::Tensor& probs_TE,
                                        const torch::Tensor& choice_T1, const torch::Tensor& scale_T1);

/// SparseMixer-v2: z = x·Wᵀ. For each of the k rounds, over the experts not chosen yet:
///   1. mask expert i when (z* − z_i) / max(|z_i|, z*) > 2ε  (z*: the round's largest score,
///      ε = router.sparsemixer.jitter_eps);
///   2. p = softmax over the unmasked experts (the masked ones get probability 0);
///   3. training: D = argmax_i(z_i + G_i) over unmasked i, G_i = −log(−log u_i) Gumbel noise
///      (u from noise.uniform_TE in round 1, noise.extra_TE in round 2); eval: D = argmax p;
///   4. weight w = scale·p[D]: training scale = 1 if D = argmax p or u' > 0.75 (u' from
///      noise.uniform_TK[:, round]), else 1/3, with the custom backward above; eval scale = 1 and
///      the plain softmax gradient;
///   5. the chosen expert is removed (score −∞) before the next round (top-2 = repeat once).
/// aux_losses: "sparsemixer_balance" = balance_coef·E·Σ_e f_e·P_e, P_e the mean of the UNmasked
///             softmax(z) and f_e the fraction of the T·k choices that went to e.
/// metrics: "active_experts" (= k), "load_cv", "candidates" (mean unmasked experts in round 1).
class SparseMixerRouterImpl : public RouterImpl {
 public:
  explicit SparseMixerRouterImpl(const Config& config);
  RouterOutput forward(const torch::Tensor& x_TD, const RouterNoise& noise = {}) override;
  std::string name() const override { return "sparsemixer"; }

  torch::Tensor weight;  // (E, D) gate projection, scores = x·weightᵀ; no bias

 private:
  int64_t n_experts_;
  int64_t k_;
  SparseMixerRouterConfig options_;
};

}  // namespace dirmoe
