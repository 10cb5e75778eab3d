#include "dirmoe/model/moe_layer.h"

#include <algorithm>
#include <cmath>

#include <ATen/autocast_mode.h>
#include <c10/core/impl/LocalDispatchKeySet.h>
#include <torch/torch.h>

#include "dirmoe/stats/routing_stats_sink.h"

namespace dirmoe {

int64_t expert_capacity(double capacity_factor, int64_t n_tokens, int64_t n_active, int64_t n_experts) {
  if (capacity_factor <= 0.0) return 0;
  const double exact = capacity_factor * static_cast<double>(n_tokens * n_active) / static_cast<double>(n_experts);
  // NOTE: the small slack keeps values like 1.1·10·1/11 = 1.0000000000000002 from rounding up to 2.
  return std::max<int64_t>(1, static_cast<int64_t>(std::ceil(exact - 1e-9)));
}

DispatchPlan plan_dispatch(const torch::Tensor& dispatch_mask_TE, int64_t capacity) {
  TORCH_CHECK(dispatch_mask_TE.dim() == 2 && dispatch_mask_TE.scalar_type() == torch::kBool,
              "dispatch: the mask must be a (T, E) bool tensor");
  torch::Tensor keep_TE = dispatch_mask_TE;
  DispatchPlan plan;
  if (capacity > 0) {
    // Rank of token t among the tokens of expert e, in token order (0-based where the mask is set).
    const torch::Tensor rank_TE = dispatch_mask_TE.cumsum(0) - 1;
    keep_TE = dispatch_mask_TE.logical_and(rank_TE < capacity);
    plan.dropped_tokens = dispatch_mask_TE.sum() - keep_TE.sum();
  } else {
    plan.dropped_tokens = torch::zeros({}, dispatch_mask_TE.options().dtype(torch::kInt64));
  }
  // Row-major nonzero of the (E, T) view: pairs come out sorted by expert, then token.
  const torch::Tensor pairs_N2 = torch::nonzero(keep_TE.t());
  plan.expert_N = pairs_N2.select(1, 0);
  plan.token_N = pairs_N2.select(1, 1);
  plan.tokens_per_expert_E = keep_TE.sum(0);  // bool sums to int64
  return plan;
}

MoeLayerImpl::MoeLayerImpl(const Config& config, int64_t layer_index, std::shared_ptr<RouterImpl> router)
    : router_(std::move(router)),
      layer_index_(layer_index),
      n_experts_(config.model.n_experts),
      n_active_(config.model.n_experts_active),
      capacity_factor_(config.model.capacity_factor) {
  TORCH_CHECK(router_ != nullptr, "MoeLayer needs a router");
  register_module("router", router_);
  experts_ = register_module(
      "experts", SwigluExperts(config.model.n_experts, config.model.d_model, config.model.d_ff, config.model.init_std));
}

void MoeLayerImpl::set_noise_key(const RouterNoiseKey& key) {
  noise_key_ = key;
  noise_key_->layer = layer_index_;
}

std::vector<torch::Tensor> MoeLayerImpl::shard_experts(std::shared_ptr<ExpertExchange> exchange) {
  TORCH_CHECK(!expert_parallel_, "MoeLayer ", layer_index_, ": experts are sharded already");
  auto dispatch = std::make_unique<ExpertParallelDispatch>(std::move(exchange), n_experts_);
  std::vector<torch::Tensor> params = dispatch->shard(*experts_);
  expert_parallel_ = std::move(dispatch);
  return params;
}

namespace {

/// The mean combine weight of the dispatched (token, expert) pairs, Σ w·mask / Σ mask: how far a
/// router's weights are from 1, where the LM gradient on a top-1 gate vanishes (docs/dirmoe.md H9).
torch::Tensor dispatched_weight(const torch::Tensor& weights_TE, const torch::Tensor& mask_TE) {
  torch::NoGradGuard no_grad;
  const torch::Tensor mask = mask_TE.to(torch::kFloat32);
  return (weights_TE.detach().to(torch::kFloat32) * mask).sum() / mask.sum().clamp_min(1.0);
}

}  // namespace

MoeLayerOutput MoeLayerImpl::forward(const torch::Tensor& x_TD, RoutingStatsSink* sink) {
  TORCH_CHECK(x_TD.dim() == 2, "MoeLayer expects (T, D) tokens");
  const int64_t n_tokens = x_TD.size(0);

  // 1. route, in the router's parameter type (float32) with autocast off: the "selective
  // precision" of Switch Transformer (Fedus et al. 2022, §2.4). Under bf16 autocast the gate
  // matmul rounds the logits to 8 bits, and near-ties then pick other experts than fp32 would:
  // on an H200 a bf16 Switch layer dispatched 5% of its output differently from fp32
  // (tests/gpu/test_gpu_experts.cpp). The router's matmuls are T·D·E, small beside the experts.
  RouterNoise noise;
  noise.key = noise_key_;
  RouterOutput routed;
  {
    const c10::DeviceType device_type = x_TD.device().type();
    router_->set_step_under_bf16_autocast(at::autocast::is_autocast_enabled(device_type) &&
                                          at::autocast::get_autocast_dtype(device_type) == at::kBFloat16);
    const c10::impl::ExcludeDispatchKeyGuard no_autocast(c10::autocast_dispatch_keyset);
    const std::vector<torch::Tensor> params = router_->parameters();
    routed = router_->forward(params.empty() ? x_TD : x_TD.to(params.front().scalar_type()), noise);
  }
  const torch::Tensor& mask_TE = routed.dispatch_mask_TE;
  const torch::Tensor& weights_TE = routed.weights_TE;
  TORCH_CHECK(mask_TE.sizes() == torch::IntArrayRef({n_tokens, n_experts_}) && weights_TE.sizes() == mask_TE.sizes(),
              "router ", router_->name(), " returned a mask/weights not of shape (T, E)");
  if (sink != nullptr) sink->record(layer_index_, mask_TE.detach(), weights_TE.detach());
  routed.metrics["dispatched_weight"] = dispatched_weight(weights_TE, mask_TE);

  if (n_experts_ == 1 && capacity_factor_ <= 0.0) {
    // One expert, dropless: the layer is the dense FFN scaled by each token's weight, masked so that
    // undispatched tokens give 0 and pass no gradient to their weight, as in the dispatch below.
    const auto dtype = x_TD.scalar_type();
    const torch::Tensor y_TD = swiglu(x_TD, experts_->w_gate.to(dtype)[0], experts_->w_up.to(dtype)[0],
                                      experts_->w_down.to(dtype)[0]);
    MoeLayerOutput out;
    out.y_TD = (y_TD * (weights_TE * mask_TE)).to(x_TD.scalar_type());
    out.aux_losses = std::move(routed.aux_losses);
    out.metrics.active_experts = mask_TE.sum(1).to(torch::kFloat32).mean().detach();
    out.metrics.tokens_per_expert_E = mask_TE.sum(0).detach();
    out.metrics.dropped_tokens = torch::zeros({}, mask_TE.options().dtype(torch::kInt64));
    out.metrics.router_metrics = std::move(routed.metrics);
    return out;
  }

  // 2. dispatch
  const DispatchPlan plan =
      plan_dispatch(mask_TE, expert_capacity(capacity_factor_, n_tokens, n_active_, n_experts_));
  const torch::Tensor x_ND = x_TD.index_select(0, plan.token_N);

  // 3. experts
  const torch::Tensor y_ND =
      expert_parallel_ ? expert_parallel_->forward(x_ND, plan.tokens_per_expert_E,
                                                   [this](const torch::Tensor& x_RD, const torch::Tensor& counts_L) {
                                                     return experts_->forward(x_RD, counts_L);
                                                   })
                       : experts_->forward(x_ND, plan.tokens_per_expert_E);

  // 4. combine
  const torch::Tensor weight_N = weights_TE.reshape({-1}).index_select(0, plan.token_N * n_experts_ + plan.expert_N);
  const torch::Tensor contrib_ND = (y_ND * weight_N.unsqueeze(1)).to(x_TD.scalar_type());
  MoeLayerOutput out;
  out.y_TD = torch::zeros_like(x_TD).index_add(0, plan.token_N, contrib_ND);
  out.aux_losses = std::move(routed.aux_losses);
  out.metrics.active_experts = mask_TE.sum(1).to(torch::kFloat32).mean().detach();
  out.metrics.tokens_per_expert_E = plan.tokens_per_expert_E.detach();
  out.metrics.dropped_tokens = plan.dropped_tokens.detach();
  out.metrics.router_metrics = std::move(routed.metrics);
  return out;
}

}  // namespace dirmoe
