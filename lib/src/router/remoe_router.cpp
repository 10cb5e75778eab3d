#include "dirmoe/router/remoe_router.h"

#include <torch/torch.h>

#include "dirmoe/router/router_registry.h"

namespace dirmoe {

namespace {
const bool registered = register_router("remoe", [](const Config& config) {
  return std::static_pointer_cast<RouterImpl>(std::make_shared<RemoeRouterImpl>(config));
});
}  // namespace

RemoeRouterImpl::RemoeRouterImpl(const Config& config)
    : n_experts_(config.model.n_experts),
      k_(config.model.n_experts_active),
      target_sparsity_(1.0 - static_cast<double>(config.model.n_experts_active) / config.model.n_experts),
      lambda_factor_(config.router.remoe.lambda_factor) {
  TORCH_CHECK(k_ >= 1 && k_ <= n_experts_, "remoe router: need 1 <= k <= E");
  weight = register_parameter("weight", torch::randn({n_experts_, config.model.d_model}) * config.model.init_std);
  // NOTE: float64 so that λ keeps its value through many ×1.2 / ÷1.2 steps; module.to(dtype)
  // may convert it, which only costs precision.
  lambda = register_buffer("lambda", torch::full({}, config.router.remoe.lambda_init, torch::kFloat64));
}

RouterOutput RemoeRouterImpl::forward(const torch::Tensor& x_TD, const RouterNoise& /*noise*/) {
  TORCH_CHECK(x_TD.dim() == 2 && x_TD.size(1) == weight.size(1), "remoe router: x_TD must be (T, ", weight.size(1),
              "), got ", x_TD.sizes());
  auto logits_TE = torch::matmul(x_TD, weight.t());
  logits_TE = logits_TE.to(at::promote_types(logits_TE.scalar_type(), torch::kFloat32));
  const auto relu_TE = torch::relu(logits_TE);

  RouterOutput out;
  out.dispatch_mask_TE = relu_TE > 0;
  out.weights_TE = relu_TE;

  // E/(T²k)·Σ_e (Σ_t R_te)(Σ_t 1[R_te>0]) written with the two means over tokens, each over the global
  // batch when it is split over processes (batch_mean.h)
  const auto active_frac_E = global_batch_mean(out.dispatch_mask_TE.to(relu_TE.scalar_type()).mean(0));
  const auto l1 = static_cast<double>(n_experts_) / static_cast<double>(k_) *
                  (global_batch_mean(relu_TE.mean(0)) * active_frac_E).sum();
  out.aux_losses["remoe_l1"] = lambda.to(l1.scalar_type()) * l1;

  torch::NoGradGuard no_grad;
  const auto sparsity = 1.0 - out.dispatch_mask_TE.to(torch::kFloat64).mean();
  if (is_training()) {
    sparsity_sum_ = sparsity_sum_.defined() ? sparsity_sum_ + sparsity : sparsity.clone();
    ++n_measured_;
  }
  out.metrics["lambda"] = lambda.to(torch::kFloat32).clone();
  out.metrics["sparsity"] = sparsity.to(torch::kFloat32);
  out.metrics["active_experts"] = (static_cast<double>(n_experts_) * (1.0 - sparsity)).to(torch::kFloat32);
  return out;
}

torch::Tensor RemoeRouterImpl::measured_sparsity() const {
  if (n_measured_ == 0) return {};
  return sparsity_sum_ / static_cast<double>(n_measured_);
}

void RemoeRouterImpl::set_measured_sparsity(const torch::Tensor& sparsity) {
  TORCH_CHECK(sparsity.defined() && sparsity.numel() == 1, "remoe router: sparsity must be a scalar tensor");
  sparsity_sum_ = sparsity.detach().reshape({}).to(lambda.device(), torch::kFloat64);
  n_measured_ = 1;
}

void RemoeRouterImpl::update_controller() {
  if (n_measured_ == 0) return;  // no training forward since the last update: λ stays
  torch::NoGradGuard no_grad;
  const auto mean_sparsity = measured_sparsity().to(lambda.device());
  const auto factor = torch::where(mean_sparsity < target_sparsity_, torch::full({}, lambda_factor_, lambda.options()),
                                   torch::full({}, 1.0 / lambda_factor_, lambda.options()));
  lambda.mul_(factor);
  sparsity_sum_ = torch::Tensor();
  n_measured_ = 0;
}

}  // namespace dirmoe
