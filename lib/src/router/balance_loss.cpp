#include "dirmoe/router/balance_loss.h"

#include <torch/torch.h>

namespace dirmoe {

torch::Tensor switch_balance_loss(const torch::Tensor& probs_TE, const torch::Tensor& dispatch_mask_TE,
                                  int64_t k, BatchMeanReducer* batch) {
  TORCH_CHECK(probs_TE.dim() == 2 && probs_TE.sizes() == dispatch_mask_TE.sizes(),
              "switch_balance_loss: probs_TE and dispatch_mask_TE must both be (T, E)");
  TORCH_CHECK(k >= 1, "switch_balance_loss: k must be >= 1");
  const int64_t T = probs_TE.size(0);
  const int64_t E = probs_TE.size(1);
  const auto fraction_E = batch_mean(batch, dispatch_mask_TE.to(probs_TE.scalar_type()).sum(0) / static_cast<double>(T * k));
  const auto mean_prob_E = batch_mean(batch, probs_TE.mean(0));
  return static_cast<double>(E) * (fraction_E * mean_prob_E).sum();
}

torch::Tensor dispatch_load_cv(const torch::Tensor& dispatch_mask_TE) {
  torch::NoGradGuard no_grad;
  const auto load_E = dispatch_mask_TE.to(torch::kFloat64).sum(0);
  return (load_E.std(/*unbiased=*/false) / load_E.mean().clamp_min(1e-12)).to(torch::kFloat32);
}

}  // namespace dirmoe
