#include "dirmoe/router/sparsemixer_router.h"

#include <limits>

#include <torch/torch.h>

#include "dirmoe/router/balance_loss.h"
#include "dirmoe/router/router_registry.h"

namespace dirmoe {

namespace {
const bool registered = register_router("sparsemixer", [](const Config& config) {
  return std::static_pointer_cast<RouterImpl>(std::make_shared<SparseMixerRouterImpl>(config));
});

using torch::autograd::AutogradContext;
using torch::autograd::variable_list;

/// GRIN's straight-through-style estimator for one choice (see sparsemixer_choice_weight).
struct SparseMixerWeightFunction : public torch::autograd::Function<SparseMixerWeightFunction> {
  static torch::Tensor forward(AutogradContext* ctx, const torch::Tensor& /*scores_TE*/, const torch::Tensor& probs_TE,
                               const torch::Tensor& choice_T1, const torch::Tensor& scale_T1) {
    const auto chosen_prob_T1 = probs_TE.gather(1, choice_T1);
    ctx->save_for_backward({probs_TE, choice_T1, chosen_prob_T1});
    return chosen_prob_T1 * scale_T1;
  }

  static variable_list backward(AutogradContext* ctx, variable_list grad_outputs) {
    const auto saved = ctx->get_saved_variables();
    const auto& probs_TE = saved[0];
    const auto& choice_T1 = saved[1];
    const auto& chosen_prob_T1 = saved[2];
    const auto g_T1 = grad_outputs[0] * chosen_prob_T1;
    auto grad_scores_TE = -probs_TE * g_T1;
    grad_scores_TE.scatter_add_(1, choice_T1, g_T1);
    return {grad_scores_TE, torch::Tensor(), torch::Tensor(), torch::Tensor()};
  }
};

torch::Tensor checked_noise(const torch::Tensor& given, const std::optional<RouterNoiseKey>& key,
                            RouterNoiseStream stream, const torch::Tensor& like, const char* what) {
  if (!given.defined()) return fresh_uniform_like(key, stream, like);
  TORCH_CHECK(given.sizes() == like.sizes(), "sparsemixer router: noise.", what, " must have shape ", like.sizes(),
              ", got ", given.sizes());
  return given.to(like.options());
}
}  // namespace

torch::Tensor sparsemixer_choice_weight(const torch::Tensor& scores_TE, const torch::Tensor& probs_TE,
                                        const torch::Tensor& choice_T1, const torch::Tensor& scale_T1) {
  TORCH_CHECK(scores_TE.dim() == 2 && probs_TE.sizes() == scores_TE.sizes(),
              "sparsemixer_choice_weight: scores_TE and probs_TE must both be (T, E)");
  TORCH_CHECK(choice_T1.dim() == 2 && choice_T1.size(1) == 1 && scale_T1.sizes() == choice_T1.sizes(),
              "sparsemixer_choice_weight: choice_T1 and scale_T1 must be (T, 1)");
  return SparseMixerWeightFunction::apply(scores_TE, probs_TE.detach(), choice_T1, scale_T1.to(probs_TE.dtype()));
}

SparseMixerRouterImpl::SparseMixerRouterImpl(const Config& config)
    : n_experts_(config.model.n_experts), k_(config.model.n_experts_active), options_(config.router.sparsemixer) {
  TORCH_CHECK(k_ >= 1 && k_ <= 2 && k_ <= n_experts_, "sparsemixer router: k must be 1 or 2 and <= E");
  weight = register_parameter("weight", torch::randn({n_experts_, config.model.d_model}) * config.model.init_std);
}

RouterOutput SparseMixerRouterImpl::forward(const torch::Tensor& x_TD, const RouterNoise& noise) {
  TORCH_CHECK(x_TD.dim() == 2 && x_TD.size(1) == weight.size(1), "sparsemixer router: x_TD must be (T, ",
              weight.size(1), "), got ", x_TD.sizes());
  auto scores_TE = torch::matmul(x_TD, weight.t());
  scores_TE = scores_TE.to(at::promote_types(scores_TE.scalar_type(), torch::kFloat32));
  const int64_t T = scores_TE.size(0);
  const bool training = is_training();
  const double inf = std::numeric_limits<double>::infinity();

  torch::Tensor scale_draws_TK;
  if (training) {
    scale_draws_TK = noise.uniform_TK.defined() ? noise.uniform_TK.to(scores_TE.options())
                                                : fresh_uniform(noise.key, RouterNoiseStream::scale, T, k_, scores_TE.options());
    TORCH_CHECK(scale_draws_TK.sizes() == torch::IntArrayRef({T, k_}), "sparsemixer router: noise.uniform_TK must be (",
                T, ", ", k_, ")");
  }

  auto weights_TE = torch::zeros_like(scores_TE);
  auto mask_TE = torch::zeros(scores_TE.sizes(), scores_TE.options().dtype(torch::kBool));
  torch::Tensor candidates;
  torch::Tensor remaining_TE = scores_TE;  // chosen experts set to −∞
  for (int64_t round = 0; round < k_; ++round) {
    torch::Tensor excluded_TE;  // (T, E) bool: masked by the threshold or chosen before
    torch::Tensor top_T1;
    {
      torch::NoGradGuard no_grad;
      auto [top_score_T1, top_idx_T1] = remaining_TE.max(/*dim=*/1, /*keepdim=*/true);
      top_T1 = top_idx_T1;
      const auto factor_TE = torch::maximum(scores_TE.abs(), top_score_T1);
      excluded_TE = ((top_score_T1 - scores_TE) / factor_TE > 2.0 * options_.jitter_eps) | torch::isinf(remaining_TE);
      if (round == 0) candidates = (~excluded_TE).to(torch::kFloat32).sum(1).mean();
    }
    const auto gates_TE = remaining_TE.masked_fill(excluded_TE, -inf);
    const auto probs_TE = torch::softmax(gates_TE, /*dim=*/1);

    torch::Tensor choice_T1;
    torch::Tensor weight_T1;
    if (training) {
      torch::NoGradGuard no_grad;
      const auto& given = round == 0 ? noise.uniform_TE : noise.extra_TE;
      const auto stream = round == 0 ? RouterNoiseStream::selection : RouterNoiseStream::second_selection;
      const auto u_TE = checked_noise(given, noise.key, stream, scores_TE, round == 0 ? "uniform_TE" : "extra_TE")
                            .clamp_min(std::numeric_limits<float>::min());
      const auto gumbel_TE = -torch::log(-torch::log(u_TE));
      // NOTE: masked entries are set to −∞ after adding the noise (−∞ + ∞ would be NaN).
      choice_T1 = (gates_TE.detach() + gumbel_TE).masked_fill(excluded_TE, -inf).argmax(1, /*keepdim=*/true);
    } else {
      choice_T1 = top_T1;
    }
    if (training) {
      const auto keep_full_T1 = (choice_T1 == top_T1) | (scale_draws_TK.narrow(1, round, 1) > 0.75);
      const auto scale_T1 = torch::where(keep_full_T1, torch::ones_like(scale_draws_TK.narrow(1, round, 1)),
                                         torch::full_like(scale_draws_TK.narrow(1, round, 1), 1.0 / 3.0));
      weight_T1 = sparsemixer_choice_weight(scores_TE, probs_TE, choice_T1, scale_T1);
    } else {
      weight_T1 = probs_TE.gather(1, choice_T1);
    }
    weights_TE = weights_TE.scatter(1, choice_T1, weight_T1);
    mask_TE = mask_TE.scatter(1, choice_T1, true);
    remaining_TE = remaining_TE.scatter(1, choice_T1, -inf);
  }

  RouterOutput out;
  out.weights_TE = weights_TE;
  out.dispatch_mask_TE = mask_TE;
  out.aux_losses["sparsemixer_balance"] =
      options_.balance_coef * switch_balance_loss(torch::softmax(scores_TE, /*dim=*/1), mask_TE, k_, batch_reducer());
  torch::NoGradGuard no_grad;
  out.metrics["active_experts"] = torch::full({}, static_cast<double>(k_), scores_TE.options().dtype(torch::kFloat32));
  out.metrics["load_cv"] = dispatch_load_cv(mask_TE);
  out.metrics["candidates"] = candidates;
  return out;
}

}  // namespace dirmoe
