#include "dirmoe/router/topk_router.h"

#include <torch/torch.h>

#include "dirmoe/router/balance_loss.h"
#include "dirmoe/router/router_registry.h"

namespace dirmoe {

namespace {
const bool registered = register_router("topk", [](const Config& config) {
  return std::static_pointer_cast<RouterImpl>(std::make_shared<TopkRouterImpl>(config));
});
}  // namespace

TopkRouterImpl::TopkRouterImpl(const Config& config)
    : n_experts_(config.model.n_experts), k_(config.model.n_experts_active), options_(config.router.topk) {
  TORCH_CHECK(k_ >= 1 && k_ <= n_experts_, "topk router: need 1 <= k <= E");
  weight = register_parameter("weight", torch::randn({n_experts_, config.model.d_model}) * config.model.init_std);
}

RouterOutput TopkRouterImpl::forward(const torch::Tensor& x_TD, const RouterNoise& noise) {
  TORCH_CHECK(x_TD.dim() == 2 && x_TD.size(1) == weight.size(1), "topk router: x_TD must be (T, ", weight.size(1),
              "), got ", x_TD.sizes());
  torch::Tensor input_TD = x_TD;
  if (is_training() && options_.jitter > 0.0) {
    const auto u_TD = noise.uniform_TD.defined() ? noise.uniform_TD.to(x_TD.options())
                                                 : fresh_uniform_like(noise.key, RouterNoiseStream::jitter, x_TD);
    TORCH_CHECK(u_TD.sizes() == x_TD.sizes(), "topk router: noise.uniform_TD must be (T, D)");
    input_TD = x_TD * (1.0 - options_.jitter + 2.0 * options_.jitter * u_TD);
  }
  auto logits_TE = torch::matmul(input_TD, weight.t());
  // NOTE: softmax, logsumexp and the weights in at least fp32, also under bf16 autocast.
  logits_TE = logits_TE.to(at::promote_types(logits_TE.scalar_type(), torch::kFloat32));
  const auto probs_TE = torch::softmax(logits_TE, /*dim=*/1);

  auto [top_probs_TK, top_idx_TK] = probs_TE.topk(k_, /*dim=*/1);
  if (options_.renormalize) top_probs_TK = top_probs_TK / top_probs_TK.sum(1, /*keepdim=*/true);

  RouterOutput out;
  out.weights_TE = torch::zeros_like(probs_TE).scatter(1, top_idx_TK, top_probs_TK);
  out.dispatch_mask_TE =
      torch::zeros(probs_TE.sizes(), probs_TE.options().dtype(torch::kBool)).scatter(1, top_idx_TK, true);

  out.aux_losses["topk_balance"] =
      options_.balance_coef * switch_balance_loss(probs_TE, out.dispatch_mask_TE, k_, batch_reducer());
  out.aux_losses["topk_z"] = options_.z_loss_coef * torch::logsumexp(logits_TE, /*dim=*/1).pow(2).mean();

  torch::NoGradGuard no_grad;
  out.metrics["active_experts"] = torch::full({}, static_cast<double>(k_), probs_TE.options().dtype(torch::kFloat32));
  out.metrics["load_cv"] = dispatch_load_cv(out.dispatch_mask_TE);
  return out;
}

}  // namespace dirmoe
