#pragma once
// A routing task whose best solution is known: tokens come from E well-separated clusters and each
// cluster's target is its own linear map of the token, so one expert per cluster is optimal. A
// router + SwiGLU experts (the real MoeLayer) are trained on it with MSE plus the router's own
// losses; afterwards the eval-mode routing of fresh tokens is compared with the clusters.
#include <algorithm>
#include <cstdint>
#include <vector>

#include <torch/torch.h>

#include "dirmoe/config/config.h"
#include "dirmoe/model/moe_layer.h"
#include "dirmoe/router/router.h"

namespace dirmoe::testing {

struct SpecializationTask {
  int64_t d_model = 32;
  int64_t n_clusters = 8;
  double noise_std = 0.3;      // within-cluster spread per dimension (centres have unit variance per dimension)
  int64_t steps = 400;
  int64_t tokens_per_step = 512;
  double lr = 3e-3;
  uint64_t seed = 7;
};

struct SpecializationResult {
  std::vector<double> load_share_E;  // share of the eval tokens' dispatches per expert
  double purity = 0.0;               // Σ_c max_e n(c, e) / n: each cluster's tokens on its main expert
  double active_experts = 0.0;       // dispatched experts per token at eval
  double final_mse = 0.0;            // eval MSE of the layer's output against the targets
  int64_t experts_over(double share) const {
    return std::count_if(load_share_E.begin(), load_share_E.end(), [&](double s) { return s >= share; });
  }
};

/// Trains a MoeLayer built from `config` (its model.d_model, n_experts, n_experts_active, d_ff and
/// router) on the task; `config.model.d_model` must equal task.d_model.
inline SpecializationResult train_specialization(const Config& config, const SpecializationTask& task) {
  TORCH_CHECK(config.model.d_model == task.d_model, "synthetic task: d_model mismatch");
  torch::manual_seed(task.seed);
  const int64_t D = task.d_model, C = task.n_clusters;
  const torch::Tensor centres_CD = torch::randn({C, D});
  const torch::Tensor maps_CDD = torch::randn({C, D, D}) / std::sqrt(static_cast<double>(D));
  auto sample = [&](int64_t n, torch::Tensor* cluster_N, torch::Tensor* y_ND) {
    *cluster_N = torch::randint(C, {n}, torch::kLong);
    const torch::Tensor x_ND = centres_CD.index_select(0, *cluster_N) + task.noise_std * torch::randn({n, D});
    *y_ND = torch::bmm(maps_CDD.index_select(0, *cluster_N), x_ND.unsqueeze(2)).squeeze(2);
    return x_ND;
  };

  MoeLayer layer(config, /*layer_index=*/0, make_router(config));
  torch::optim::Adam optimizer(layer->parameters(), torch::optim::AdamOptions(task.lr));
  layer->train();
  for (int64_t step = 0; step < task.steps; ++step) {
    layer->router().set_step(step);
    torch::Tensor cluster_N, y_ND;
    const torch::Tensor x_ND = sample(task.tokens_per_step, &cluster_N, &y_ND);
    const MoeLayerOutput out = layer->forward(x_ND);
    torch::Tensor loss = (out.y_TD - y_ND).square().sum(1).mean();
    for (const auto& [name, aux] : out.aux_losses) loss = loss + aux;
    optimizer.zero_grad();
    loss.backward();
    torch::nn::utils::clip_grad_norm_(layer->parameters(), 1.0);
    optimizer.step();
    layer->router().update_controller();
  }

  layer->eval();
  torch::NoGradGuard no_grad;
  torch::Tensor cluster_N, y_ND;
  const torch::Tensor x_ND = sample(4096, &cluster_N, &y_ND);
  const RouterOutput routed = layer->router().forward(x_ND);
  const MoeLayerOutput out = layer->forward(x_ND);
  const int64_t E = config.model.n_experts;
  // each token's main expert: the dispatched expert with the largest weight
  const torch::Tensor main_N = routed.weights_TE.masked_fill(routed.dispatch_mask_TE.logical_not(), -1.0).argmax(1);
  const torch::Tensor counts_CE = torch::zeros({C * E}, torch::kLong).index_add_(
      0, cluster_N * E + main_N, torch::ones_like(main_N)).reshape({C, E});
  SpecializationResult r;
  r.purity = std::get<0>(counts_CE.max(1)).sum().item<double>() / static_cast<double>(x_ND.size(0));
  const torch::Tensor dispatched_E = routed.dispatch_mask_TE.sum(0).to(torch::kFloat64);
  const torch::Tensor share_E = dispatched_E / dispatched_E.sum();
  r.load_share_E.assign(share_E.data_ptr<double>(), share_E.data_ptr<double>() + E);
  r.active_experts = routed.dispatch_mask_TE.sum(1).to(torch::kFloat64).mean().item<double>();
  r.final_mse = (out.y_TD - y_ND).square().sum(1).mean().item<double>();
  return r;
}

}  // namespace dirmoe::testing
