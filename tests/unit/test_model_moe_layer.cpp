// MoE layer: dispatch, experts and combine against hand-written references.
#include <catch2/catch.hpp>
#include <torch/torch.h>
#include <ATen/autocast_mode.h>

#include <algorithm>
#include <cmath>
#include <vector>

#include "../support/test_routers.h"
#include "dirmoe/model/moe_layer.h"
#include "dirmoe/router/router.h"
#include "dirmoe/stats/routing_stats_sink.h"

using namespace dirmoe;

namespace {

Config tiny_config(int64_t n_experts, int64_t k, double capacity_factor = 0.0) {
  Config c;
  c.model.d_model = 8;
  c.model.d_ff = 12;
  c.model.n_experts = n_experts;
  c.model.n_experts_active = k;
  c.model.capacity_factor = capacity_factor;
  c.model.init_std = 0.5;  // large enough that the SwiGLU is far from linear
  return c;
}

// silu(g)·u written out: g·σ(g)·u, then ·W_down, on one token row.
torch::Tensor swiglu_by_hand(const torch::Tensor& x_D, const torch::Tensor& wg_DF, const torch::Tensor& wu_DF,
                             const torch::Tensor& wd_FD) {
  const torch::Tensor g_F = torch::mv(wg_DF.t(), x_D);
  const torch::Tensor u_F = torch::mv(wu_DF.t(), x_D);
  return torch::mv(wd_FD.t(), g_F / (1 + torch::exp(-g_F)) * u_F);
}

struct RecordingSink : RoutingStatsSink {
  std::vector<int64_t> layers;
  torch::Tensor mask, weights;
  void record(int64_t layer, const torch::Tensor& m, const torch::Tensor& w) override {
    layers.push_back(layer);
    mask = m;
    weights = w;
  }
};

}  // namespace

TEST_CASE("MoE with one expert and k=1 equals the dense SwiGLU FFN", "[model][moe]") {
  torch::manual_seed(11);
  Config c = tiny_config(1, 1);
  auto router = std::make_shared<testing::SoftmaxTopkTestRouter>(8, 1, 1, 0.5);
  MoeLayer moe(c, 0, router);
  moe->to(torch::kFloat64);
  const torch::Tensor x_TD = torch::randn({10, 8}, torch::kFloat64);
  const torch::Tensor y_TD = moe->forward(x_TD).y_TD;
  auto& experts = *moe->experts();
  for (int64_t t = 0; t < 10; ++t) {
    const torch::Tensor expected = swiglu_by_hand(x_TD[t], experts.w_gate[0], experts.w_up[0], experts.w_down[0]);
    CHECK(torch::allclose(y_TD[t], expected, 1e-12, 1e-12));
  }
  CHECK(torch::allclose(y_TD, swiglu(x_TD, experts.w_gate[0], experts.w_up[0], experts.w_down[0]), 1e-12, 1e-12));
}

TEST_CASE("routed output and gradients equal a naive per-token loop", "[model][moe]") {
  torch::manual_seed(12);
  // E = 1 takes the layer's dispatch-free path (the dense FFN scaled by the weights).
  const int64_t E = GENERATE(4, 1);
  const int64_t T = 14;
  Config c = tiny_config(E, std::min<int64_t>(2, E));
  auto router = std::make_shared<testing::FixedTestRouter>();
  MoeLayer moe(c, 3, router);
  moe->to(torch::kFloat64);
  torch::Tensor mask_TE = torch::rand({T, E}, torch::kFloat64) < 0.4;
  mask_TE[0] = false;  // a token with no expert
  mask_TE[1] = true;   // a token with every expert
  if (E == 4) mask_TE.index_put_({2}, torch::tensor({true, false, true, true}));
  const torch::Tensor w_TE = (torch::rand({T, E}, torch::kFloat64) * mask_TE).requires_grad_(true);
  router->mask_TE = mask_TE;
  router->weights_TE = w_TE;
  const torch::Tensor x_TD = torch::randn({T, 8}, torch::kFloat64).requires_grad_(true);
  const torch::Tensor g_TD = torch::randn({T, 8}, torch::kFloat64);

  RecordingSink sink;
  MoeLayerOutput out = moe->forward(x_TD, &sink);
  (out.y_TD * g_TD).sum().backward();

  // Naive reference on detached copies of every leaf.
  auto& experts = *moe->experts();
  const torch::Tensor xr = x_TD.detach().clone().requires_grad_(true);
  const torch::Tensor wr = w_TE.detach().clone().requires_grad_(true);
  const torch::Tensor gate = experts.w_gate.detach().clone().requires_grad_(true);
  const torch::Tensor up = experts.w_up.detach().clone().requires_grad_(true);
  const torch::Tensor down = experts.w_down.detach().clone().requires_grad_(true);
  std::vector<torch::Tensor> rows;
  for (int64_t t = 0; t < T; ++t) {
    torch::Tensor y = torch::zeros({8}, torch::kFloat64);
    for (int64_t e = 0; e < E; ++e) {
      if (!mask_TE[t][e].item<bool>()) continue;
      y = y + wr[t][e] * swiglu_by_hand(xr[t], gate[e], up[e], down[e]);
    }
    rows.push_back(y);
  }
  const torch::Tensor ref_TD = torch::stack(rows);
  (ref_TD * g_TD).sum().backward();

  CHECK(torch::allclose(out.y_TD, ref_TD, 1e-12, 1e-12));
  CHECK(torch::allclose(x_TD.grad(), xr.grad(), 1e-12, 1e-12));
  CHECK(torch::allclose(w_TE.grad(), wr.grad(), 1e-12, 1e-12));
  CHECK(torch::allclose(experts.w_gate.grad(), gate.grad(), 1e-12, 1e-12));
  CHECK(torch::allclose(experts.w_up.grad(), up.grad(), 1e-12, 1e-12));
  CHECK(torch::allclose(experts.w_down.grad(), down.grad(), 1e-12, 1e-12));
  CHECK(out.y_TD[0].abs().max().item<double>() == 0.0);

  // Metrics and the statistics sink.
  CHECK(out.metrics.active_experts.item<double>() == Approx(mask_TE.sum().item<double>() / T));
  CHECK(torch::equal(out.metrics.tokens_per_expert_E, mask_TE.sum(0)));
  CHECK(out.metrics.dropped_tokens.item<int64_t>() == 0);
  REQUIRE(sink.layers == std::vector<int64_t>{3});
  CHECK(torch::equal(sink.mask, mask_TE));
  CHECK(torch::equal(sink.weights, w_TE.detach()));
  CHECK_FALSE(sink.weights.requires_grad());
}

TEST_CASE("dispatch sorts pairs by expert, then token", "[model][moe]") {
  const torch::Tensor mask_TE = torch::tensor({0, 1, 1, 0, 1, 1, 0, 0, 1, 1, 0, 1}, torch::kBool).view({4, 3});
  const DispatchPlan plan = plan_dispatch(mask_TE, 0);
  // tokens: 0 → {1,2}, 1 → {1,2}, 2 → {2}, 3 → {0,2}
  CHECK(torch::equal(plan.expert_N, torch::tensor({0, 1, 1, 2, 2, 2, 2}, torch::kInt64)));
  CHECK(torch::equal(plan.token_N, torch::tensor({3, 0, 1, 0, 1, 2, 3}, torch::kInt64)));
  CHECK(torch::equal(plan.tokens_per_expert_E, torch::tensor({1, 2, 4}, torch::kInt64)));
  CHECK(plan.dropped_tokens.item<int64_t>() == 0);
}

TEST_CASE("capacity factor drops exactly the overflow, in token order, and counts it", "[model][moe]") {
  CHECK(expert_capacity(0.0, 10, 1, 2) == 0);
  CHECK(expert_capacity(1.0, 10, 1, 2) == 5);
  CHECK(expert_capacity(1.25, 8, 1, 4) == 3);  // ceil(2.5)
  CHECK(expert_capacity(1.1, 10, 1, 11) == 1);

  torch::manual_seed(13);
  const int64_t T = 10, E = 2;
  Config c = tiny_config(E, 1, /*capacity_factor=*/1.0);  // capacity ceil(1·10·1/2) = 5
  auto router = std::make_shared<testing::FixedTestRouter>();
  MoeLayer moe(c, 0, router);
  moe->to(torch::kFloat64);
  // Expert 0 gets tokens {0,1,3,4,6,7,9} (7 > 5: tokens 7 and 9 overflow); expert 1 gets {2,5,8}.
  const std::vector<int64_t> choice = {0, 0, 1, 0, 0, 1, 0, 0, 1, 0};
  torch::Tensor mask_TE = torch::zeros({T, E}, torch::kBool);
  for (int64_t t = 0; t < T; ++t) mask_TE[t][choice[t]] = true;
  router->mask_TE = mask_TE;
  router->weights_TE = torch::rand({T, E}, torch::kFloat64) * mask_TE;
  const torch::Tensor x_TD = torch::randn({T, 8}, torch::kFloat64);
  MoeLayerOutput out = moe->forward(x_TD);
  CHECK(out.metrics.dropped_tokens.item<int64_t>() == 2);
  CHECK(torch::equal(out.metrics.tokens_per_expert_E, torch::tensor({5, 3}, torch::kInt64)));
  CHECK(out.metrics.active_experts.item<double>() == Approx(1.0));  // the router's decision, before drops
  auto& experts = *moe->experts();
  for (int64_t t = 0; t < T; ++t) {
    const bool dropped = t == 7 || t == 9;
    const int64_t e = choice[t];
    const torch::Tensor expected =
        dropped ? torch::zeros({8}, torch::kFloat64)
                : router->weights_TE[t][e] * swiglu_by_hand(x_TD[t], experts.w_gate[e], experts.w_up[e], experts.w_down[e]);
    CHECK(torch::allclose(out.y_TD[t], expected, 1e-12, 1e-12));
  }

  // k = 2 with capacity 2 per expert: pairs beyond each expert's first two tokens are dropped.
  Config c2 = tiny_config(3, 2, /*capacity_factor=*/0.75);  // ceil(0.75·4·2/3) = 2
  CHECK(expert_capacity(0.75, 4, 2, 3) == 2);
  const torch::Tensor mask2 = torch::tensor({1, 1, 0, 1, 0, 1, 1, 1, 0, 0, 1, 1}, torch::kBool).view({4, 3});
  const DispatchPlan plan = plan_dispatch(mask2, 2);
  // expert 0: tokens 0,1,2 (2 dropped); expert 1: tokens 0,2,3 (3 dropped); expert 2: tokens 1,3.
  CHECK(plan.dropped_tokens.item<int64_t>() == 2);
  CHECK(torch::equal(plan.token_N, torch::tensor({0, 1, 0, 2, 1, 3}, torch::kInt64)));
  CHECK(torch::equal(plan.tokens_per_expert_E, torch::tensor({2, 2, 2}, torch::kInt64)));
}

TEST_CASE("the MoE layer tells its router about bf16 autocast; DirMoE's alpha_mlp_precision auto follows it",
          "[model][moe]") {
  // The KL term reads α^q, so it shows the α MLP's precision; the router runs before the experts, so
  // autocast's effect on the experts does not reach it.
  struct Result {
    bool told = false;
    double kl = 0;
  };
  auto run = [](const std::string& precision, bool autocast) {
    Config c = tiny_config(4, 1);
    c.router.type = "dirmoe";
    c.router.dirmoe.alpha_hidden = 16;
    c.router.dirmoe.alpha_mlp_precision = precision;
    torch::manual_seed(5);
    MoeLayer moe(c, 0, make_router(c));
    moe->train();
    const torch::Tensor x_TD = torch::randn({32, 8});
    const bool was_enabled = at::autocast::is_autocast_enabled(at::kCPU);
    const at::ScalarType was_dtype = at::autocast::get_autocast_dtype(at::kCPU);
    at::autocast::set_autocast_enabled(at::kCPU, autocast);
    at::autocast::set_autocast_dtype(at::kCPU, at::kBFloat16);
    torch::manual_seed(6);  // the router's noise
    const MoeLayerOutput out = moe->forward(x_TD);
    at::autocast::set_autocast_enabled(at::kCPU, was_enabled);
    at::autocast::set_autocast_dtype(at::kCPU, was_dtype);
    return Result{moe->router().step_under_bf16_autocast(), out.aux_losses.at("dirmoe_kl_dir").item<double>()};
  };
  const Result auto_bf16 = run("auto", true), forced_bf16 = run("bf16", true), fp32_under = run("fp32", true);
  const Result auto_plain = run("auto", false), fp32_plain = run("fp32", false);
  CHECK(auto_bf16.told);
  CHECK_FALSE(auto_plain.told);
  CHECK(auto_bf16.kl == forced_bf16.kl);
  CHECK(auto_bf16.kl != fp32_under.kl);
  CHECK(auto_plain.kl == fp32_plain.kl);
  CHECK(fp32_under.kl == fp32_plain.kl);
  CHECK(std::abs(auto_bf16.kl - fp32_plain.kl) < 1e-2 * std::abs(fp32_plain.kl));  // bf16 rounding, not another α
}
