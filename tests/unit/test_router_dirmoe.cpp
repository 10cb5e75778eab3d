// DirMoE router: forward, losses and gradients against an independent Python reference written
// from the formulas (tests/reference/dirmoe_reference.py), eval determinism, the empty-selection
// fallback, and a control run that reaches its target expected active experts.
#include <chrono>
#include <cmath>

#include <catch2/catch.hpp>
#include <torch/torch.h>

#include "../support/python_reference.h"
#include "../support/router_test_util.h"
#include "dirmoe/router/dirmoe_router.h"
#include "dirmoe/router/router_registry.h"

using dirmoe::Config;
using dirmoe::DirmoeRouterImpl;
using dirmoe::RouterNoise;
using dirmoe::RouterOutput;
using dirmoe::testing::scaled_max_abs_diff;

namespace {

Config small_config(int64_t d_model, int64_t n_experts, int64_t k) {
  Config config;
  config.model.d_model = d_model;
  config.model.n_heads = 1;
  config.model.n_kv_heads = 1;
  config.model.n_experts = n_experts;
  config.model.n_experts_active = k;
  config.router.type = "dirmoe";
  config.router.dirmoe.alpha_hidden = 7;
  return config;
}

torch::Tensor total_loss(const RouterOutput& out, const torch::Tensor& probe_TE) {
  torch::Tensor total = (probe_TE * out.weights_TE).sum();
  for (const auto& [name, loss] : out.aux_losses) total = total + loss;
  return total;
}

struct ReferenceCase {
  std::string selection = "hard";
  bool training = true;
  int64_t k = 2;
  double beta_z = 0.0;
  int64_t step = 0;
  bool schedules = false;
  uint64_t seed = 1;
  std::string weights = "all";
  bool center = false;
  std::string sparsity_penalty = "token";
  double usage_kl = 0.0;
  double balance = 0.0;
  bool aux_detach = false;      // the losses computed from x detached (H8)
  double aux_scale_end = 1.0;   // the usage and sparsity coefficients decayed toward this factor (H11)
  std::string alpha_mlp_precision = "auto";  // "bf16": the α MLP's hidden layer from bf16 operands
};

void check_against_reference(const ReferenceCase& c) {
  REQUIRE(dirmoe::testing::python_reference_available());
  const int64_t T = 24, D = 6, E = 5;
  Config config = small_config(D, E, c.k);
  auto& d = config.router.dirmoe;
  d.selection = c.selection;
  d.tau_start = 1.3;
  d.lambda_q = 3.0;
  d.beta_theta = 0.2;
  d.lambda_sparsity = 0.05;
  d.beta_z = c.beta_z;
  d.recon_variance = 0.7;
  d.schedules = c.schedules;
  d.tau_decay = 0.999;
  d.weights = c.weights;
  d.center_logits = c.center;
  d.sparsity_penalty = c.sparsity_penalty;
  d.usage_kl = c.usage_kl;
  d.balance_coef = c.balance;
  d.aux_detach_input = c.aux_detach;
  d.aux_scale_end = c.aux_scale_end;
  d.aux_scale_half_life = 100.0;
  d.alpha_mlp_precision = c.alpha_mlp_precision;
  config.validate();

  torch::manual_seed(c.seed);
  auto router = std::make_shared<DirmoeRouterImpl>(config);
  router->to(torch::kFloat64);
  router->set_step(c.step);
  router->train(c.training);
  dirmoe::testing::TensorMap inputs;
  {
    torch::NoGradGuard no_grad;
    for (auto& p : router->named_parameters()) {
      p.value().normal_(0.0, 0.6);
      inputs[p.key()] = p.value().clone();
    }
    router->gate->bias.add_(-1.0);  // some tokens select nothing, some several
    inputs["gate.bias"] = router->gate->bias.clone();
  }
  const torch::Tensor x_TD = torch::randn({T, D}, torch::kFloat64);
  const torch::Tensor u_TE = torch::rand({T, E}, torch::kFloat64) * 0.98 + 0.01;
  const torch::Tensor probe_TE = torch::randn({T, E}, torch::kFloat64);
  const auto& s = router->schedule();
  auto scalar = [](double v) { return torch::scalar_tensor(v, torch::kFloat64); };
  inputs["x"] = x_TD;
  inputs["uniform"] = u_TE;
  inputs["probe"] = probe_TE;
  inputs["tau"] = scalar(s.tau);
  inputs["lambda_q"] = scalar(d.lambda_q);
  inputs["lambda_p"] = scalar(s.lambda_p);
  inputs["a_hi"] = scalar(d.a_hi);
  inputs["a_lo"] = scalar(s.a_lo);
  inputs["k"] = scalar(static_cast<double>(c.k));
  inputs["beta_theta"] = scalar(d.beta_theta);
  inputs["lambda_s"] = scalar(d.lambda_sparsity);
  inputs["beta_z"] = scalar(d.beta_z);
  inputs["pi"] = scalar(static_cast<double>(c.k) / static_cast<double>(E));
  inputs["sigma2"] = scalar(d.recon_variance);
  inputs["eps"] = scalar(d.alpha_eps);
  inputs["theta_mix"] = scalar(d.theta_mix);
  inputs["hard"] = scalar(c.selection == "hard" ? 1.0 : 0.0);
  inputs["topk"] = scalar(c.selection == "topk" ? 1.0 : 0.0);
  inputs["training"] = scalar(c.training ? 1.0 : 0.0);
  inputs["seed"] = scalar(static_cast<double>(c.seed));
  inputs["weights_all"] = scalar(c.weights == "all" ? 1.0 : 0.0);
  inputs["center"] = scalar(c.center ? 1.0 : 0.0);
  inputs["sparsity_batch"] = scalar(c.sparsity_penalty == "batch" ? 1.0 : 0.0);
  inputs["sparsity_expected"] = scalar(c.sparsity_penalty == "expected" ? 1.0 : 0.0);
  inputs["usage_kl"] = scalar(c.usage_kl);
  inputs["balance"] = scalar(c.balance);
  inputs["aux_detach"] = scalar(c.aux_detach ? 1.0 : 0.0);
  inputs["aux_scale_end"] = scalar(c.aux_scale_end);
  inputs["aux_scale_half_life"] = scalar(d.aux_scale_half_life);
  inputs["step"] = scalar(static_cast<double>(c.step));
  inputs["schedules"] = scalar(c.schedules ? 1.0 : 0.0);
  inputs["alpha_bf16"] = scalar(c.alpha_mlp_precision == "bf16" ? 1.0 : 0.0);
  const auto ref = dirmoe::testing::run_python_reference("dirmoe_reference.py", inputs);

  RouterNoise noise;
  noise.uniform_TE = u_TE;
  if (c.training) noise.gamma_TE = ref.at("gamma");
  const torch::Tensor x = x_TD.clone().requires_grad_(true);
  const RouterOutput out = router->forward(x, noise);
  total_loss(out, probe_TE).backward();

  CHECK(torch::equal(out.dispatch_mask_TE, ref.at("mask")));
  CHECK(scaled_max_abs_diff(out.weights_TE, ref.at("weights")) < 1e-6);
  CHECK(torch::equal(out.weights_TE.ne(0), out.dispatch_mask_TE));
  CHECK(scaled_max_abs_diff(out.aux_losses.at("dirmoe_recon"), ref.at("recon")) < 1e-6);
  CHECK(scaled_max_abs_diff(out.aux_losses.at("dirmoe_kl_dir"), ref.at("kl_dir")) < 1e-6);
  CHECK(scaled_max_abs_diff(out.aux_losses.at("dirmoe_sparsity"), ref.at("sparsity")) < 1e-6);
  // each optional term is present exactly when its coefficient is set, and equals the reference
  for (const auto& [name, coef] : std::vector<std::pair<std::string, double>>{
           {"kl_bern", c.beta_z}, {"usage_kl", c.usage_kl}, {"balance", c.balance}}) {
    INFO("loss " << name);
    if (coef > 0) {
      CHECK(scaled_max_abs_diff(out.aux_losses.at("dirmoe_" + name), ref.at(name)) < 1e-6);
    } else {
      CHECK(out.aux_losses.count("dirmoe_" + name) == 0);
    }
  }
  CHECK(out.metrics.at("empty_selection").item<double>() == ref.at("empty").item<double>());
  CHECK(scaled_max_abs_diff(out.metrics.at("expected_active"), ref.at("expected_active")) < 1e-9);
  CHECK(scaled_max_abs_diff(x.grad(), ref.at("grad.x")) < 1e-6);
  for (const auto& p : router->named_parameters()) {
    INFO("gradient of " << p.key());
    CHECK(scaled_max_abs_diff(p.value().grad(), ref.at("grad." + p.key())) < 1e-6);
  }
  if (c.selection == "topk") CHECK(torch::equal(out.dispatch_mask_TE.sum(1), torch::full({T}, c.k, torch::kLong)));
  if (c.selection == "hard" && !c.center) {
    // both dispatch paths are exercised: some tokens fall back, some pick experts themselves
    // (centred logits keep every token's selection count near the bias's, so none falls back there)
    const double empty = ref.at("empty").item<double>();
    CHECK(empty > 0);
    CHECK(empty < T);
  }
}

}  // namespace

TEST_CASE("dirmoe forward, losses and gradients equal the Python reference", "[router][dirmoe]") {
  SECTION("hard selection, training, k=2") { check_against_reference({"hard", true, 2, 0.0, 0, false, 11}); }
  SECTION("hard selection, training, k=1, Bernoulli KL, scheduled step") {
    check_against_reference({"hard", true, 1, 0.3, 700, true, 12});
  }
  SECTION("soft selection, training") { check_against_reference({"soft", true, 2, 0.0, 0, false, 13}); }
  SECTION("hard selection, eval") { check_against_reference({"hard", false, 2, 0.1, 0, false, 14}); }
  SECTION("weights renormalised over the dispatched experts, training and eval") {
    check_against_reference({"hard", true, 1, 0.0, 0, false, 15, "dispatched"});
    check_against_reference({"hard", false, 2, 0.0, 0, false, 16, "dispatched"});
    check_against_reference({"soft", true, 2, 0.0, 0, false, 17, "dispatched"});
  }
  SECTION("centred logits, batch penalty, usage KL and balance terms") {
    check_against_reference({"hard", true, 1, 0.0, 300, true, 18, "all", true, "batch", 0.7, 0.4});
    check_against_reference({"hard", true, 2, 0.0, 0, false, 19, "all", true, "token", 0.2, 0.0});
    check_against_reference({"hard", true, 2, 0.0, 0, false, 20, "all", false, "expected", 0.0, 0.0});
  }
  SECTION("top-k dispatch, training and eval") {
    check_against_reference({"topk", true, 2, 0.0, 0, false, 22, "all", true, "expected", 0.5, 0.3});
    check_against_reference({"topk", false, 1, 0.0, 0, false, 23, "all", true, "expected", 0.5, 0.3});
    check_against_reference({"topk", true, 1, 0.0, 0, false, 24, "dispatched", false, "token", 0.0, 0.0});
  }
  SECTION("losses on x detached (H8) and decayed usage and sparsity coefficients (H11)") {
    // the reference recomputes the losses' path from x.detach(): x's gradient is the LM path's alone
    check_against_reference({"topk", true, 1, 0.0, 300, true, 25, "all", true, "expected", 0.5, 0.0, true, 0.2});
    check_against_reference({"hard", true, 2, 0.2, 0, false, 26, "all", false, "token", 0.7, 0.3, true, 1.0});
    check_against_reference({"topk", true, 2, 0.0, 250, true, 27, "dispatched", true, "batch", 0.4, 0.0, false, 0.1});
    check_against_reference({"topk", false, 1, 0.0, 0, false, 28, "all", true, "expected", 0.5, 0.0, true, 1.0});
  }
  SECTION("the α MLP's hidden layer in bf16, training (the routing chain node) and eval (float64 throughout)") {
    check_against_reference({"topk", true, 1, 0.0, 300, true, 29, "all", true, "expected", 0.5, 0.0, true, 0.2, "bf16"});
    check_against_reference({"hard", true, 2, 0.2, 0, false, 30, "all", false, "token", 0.7, 0.3, false, 1.0, "bf16"});
    check_against_reference({"topk", false, 1, 0.0, 0, false, 31, "all", true, "expected", 0.5, 0.0, true, 1.0, "bf16"});
  }
}

namespace {
/// d/dℓ_j of an LM-like loss Σ_e probe_e·w_e for one token whose only dispatched expert is j, read
/// from the gate bias gradient (the bias enters only ℓ_j's row).
double lm_gradient_on_selected_gate(const std::string& weights, int64_t* selected) {
  Config config = small_config(6, 5, 1);
  config.router.dirmoe.weights = weights;
  config.validate();
  torch::manual_seed(21);
  DirmoeRouterImpl router(config);
  router.to(torch::kFloat64);
  {
    torch::NoGradGuard no_grad;
    router.gate->weight.zero_();
    router.gate->bias.copy_(torch::tensor({-4.0, -4.0, 3.0, -4.0, -4.0}, torch::kFloat64));
  }
  RouterNoise noise;
  noise.uniform_TE = torch::full({1, 5}, 0.5, torch::kFloat64);  // g = 0: expert 2 alone is dispatched
  noise.gamma_TE = torch::tensor({{0.3, 0.2, 1.1, 0.4, 0.5}}, torch::kFloat64);
  router.train();
  const RouterOutput out = router.forward(torch::randn({1, 6}, torch::kFloat64), noise);
  REQUIRE(out.dispatch_mask_TE.sum().item<int64_t>() == 1);
  *selected = out.dispatch_mask_TE.to(torch::kLong).argmax().item<int64_t>();
  const torch::Tensor probe_TE = torch::tensor({{0.5, -1.0, -2.0, 0.7, 0.3}}, torch::kFloat64);
  (probe_TE * out.weights_TE).sum().backward();
  return router.gate->bias.grad()[*selected].item<double>();
}
}  // namespace

// With k = 1 and the weights renormalised over the dispatched experts, the one dispatched weight is
// exactly 1 whatever its gate says, so the LM loss sends that gate no gradient (only the other gates
// get one). Normalising z̃ ⊙ θ over all E, as the paper writes r, keeps a gradient on it.
TEST_CASE("dirmoe at k=1: the selected gate gets an LM gradient only when r is normalised over all E",
          "[router][dirmoe]") {
  int64_t selected = -1;
  CHECK(lm_gradient_on_selected_gate("dispatched", &selected) == 0.0);
  CHECK(selected == 2);
  const double g_all = lm_gradient_on_selected_gate("all", &selected);
  CHECK(selected == 2);
  CHECK(std::abs(g_all) > 1e-3);
}

TEST_CASE("dirmoe is registered and sized as documented", "[router][dirmoe]") {
  Config config = small_config(256, 8, 1);
  config.router.dirmoe.alpha_hidden = 256;
  auto router = dirmoe::make_router(config);
  CHECK(router->name() == "dirmoe");
  int64_t n = 0;
  for (const auto& p : router->parameters()) n += p.numel();
  // gate 256·8+8, α MLP 256·256+256, α_lo and α_hi 2·(256·8+8), decoder 8·256+256
  CHECK(n == (256 * 8 + 8) + (256 * 256 + 256) + 2 * (256 * 8 + 8) + (8 * 256 + 256));
  // the gate bias starts at logit(k/E) (P(ℓ + g > 0) = k/E), or τ_0·logit(k/E) when asked
  auto* dir = dynamic_cast<DirmoeRouterImpl*>(router.get());
  REQUIRE(dir != nullptr);
  CHECK(dir->gate->bias[0].item<double>() == Approx(std::log((1.0 / 8) / (7.0 / 8))).epsilon(1e-6));
  config.router.dirmoe.gate_bias_init = "tau_logit";
  DirmoeRouterImpl tau_scaled(config);
  CHECK(tau_scaled.gate->bias[0].item<double>() == Approx(2.0 * std::log((1.0 / 8) / (7.0 / 8))).epsilon(1e-6));
}

TEST_CASE("dirmoe schedules move with set_step and stay put when disabled", "[router][dirmoe]") {
  Config config = small_config(8, 4, 1);
  auto& d = config.router.dirmoe;
  d.tau_start = 2.0;
  d.tau_min = 0.5;
  d.tau_decay = 0.99;
  d.a_lo_start = 0.01;
  d.a_lo_end = 0.002;
  d.a_lo_gamma = 0.5;
  d.a_lo_eta = 100;
  d.lambda_p_start = 3.0;
  d.lambda_p_end = 1.0;
  d.lambda_p_steps = 200;
  DirmoeRouterImpl router(config);
  router.set_step(100);
  CHECK(router.schedule().tau == Approx(2.0 * std::pow(0.99, 100)));
  CHECK(router.schedule().a_lo == Approx(0.002 + 0.008 * 0.5));
  CHECK(router.schedule().lambda_p == Approx(2.0));
  router.set_step(100000);
  CHECK(router.schedule().tau == Approx(0.5));
  CHECK(router.schedule().a_lo == Approx(0.002));
  CHECK(router.schedule().lambda_p == Approx(1.0));
  const auto out = router.forward(torch::randn({3, 8}));
  CHECK(out.metrics.at("tau").item<double>() == Approx(0.5));
  CHECK(out.metrics.at("lambda_p").item<double>() == Approx(1.0));
  d.schedules = false;
  DirmoeRouterImpl fixed(config);
  fixed.set_step(100000);
  CHECK(fixed.schedule().tau == 2.0);
  CHECK(fixed.schedule().a_lo == 0.01);
  CHECK(fixed.schedule().lambda_p == 3.0);
}

TEST_CASE("dirmoe eval mode is deterministic", "[router][dirmoe]") {
  torch::manual_seed(3);
  Config config = small_config(16, 8, 2);
  DirmoeRouterImpl router(config);
  router.eval();
  const torch::Tensor x = torch::randn({32, 16});
  const auto a = router.forward(x);
  torch::manual_seed(99);  // a different global generator state must not matter
  const auto b = router.forward(x);
  CHECK(torch::equal(a.dispatch_mask_TE, b.dispatch_mask_TE));
  CHECK(torch::equal(a.weights_TE, b.weights_TE));
  // k = 2 experts each, weighted by their share of r = normalize(z̃ ⊙ θ) over all E
  CHECK(torch::equal(a.dispatch_mask_TE.sum(1), torch::full({32}, 2, torch::kLong)));
  CHECK(torch::equal(a.weights_TE.ne(0), a.dispatch_mask_TE));
  CHECK((a.weights_TE.sum(1) <= 1.0 + 1e-6).all().item<bool>());
  // training draws differ
  router.train();
  const auto c = router.forward(x);
  const auto e = router.forward(x);
  CHECK_FALSE(torch::equal(c.weights_TE, e.weights_TE));
}

TEST_CASE("dirmoe empty selection falls back to exactly one expert with finite weights", "[router][dirmoe]") {
  torch::manual_seed(4);
  Config config = small_config(16, 8, 1);
  config.router.dirmoe.selection = "hard";  // the threshold rule and its fallback
  config.router.dirmoe.weights = "dispatched";
  DirmoeRouterImpl router(config);
  {
    torch::NoGradGuard no_grad;
    router.gate->bias.fill_(-1e4);  // every logit very negative
  }
  const torch::Tensor x = torch::randn({64, 16}).requires_grad_(true);
  for (bool training : {true, false}) {
    INFO("training " << training);
    router.train(training);
    const auto out = router.forward(x);
    CHECK(torch::equal(out.dispatch_mask_TE.sum(1), torch::ones({64}, torch::kLong)));
    CHECK(out.metrics.at("empty_selection").item<double>() == 64);
    CHECK(out.metrics.at("active_experts").item<double>() == 1.0);
    CHECK(torch::isfinite(out.weights_TE).all().item<bool>());
    CHECK(torch::allclose(out.weights_TE.sum(1), torch::ones({64}), 1e-6, 1e-6));
    CHECK(torch::equal(out.weights_TE.ne(0), out.dispatch_mask_TE));
    torch::Tensor total = out.weights_TE.square().sum();
    for (const auto& [name, loss] : out.aux_losses) total = total + loss;
    CHECK(std::isfinite(total.item<double>()));
    router.zero_grad();
    if (x.grad().defined()) x.grad().zero_();
    total.backward();
    CHECK(torch::isfinite(x.grad()).all().item<bool>());
    for (const auto& p : router.parameters()) CHECK(torch::isfinite(p.grad()).all().item<bool>());
  }
}

namespace {
/// Trains the router alone on fixed random token embeddings (reconstruction + its own losses) and
/// returns the mean dispatched experts per token over fresh training-mode batches afterwards.
double control_active_experts(int64_t k, double* expected_active) {
  torch::manual_seed(100 + k);
  const int64_t D = 32, E = 8, V = 64, T = 256;
  const int64_t steps = k == 1 ? 600 : 300;  // k=1 needs more decisive logits: the fallback makes extras count
  Config config = small_config(D, E, k);
  auto& d = config.router.dirmoe;
  // the paper's threshold rule held at k by its per-token penalty alone (top-k dispatch is k by construction)
  d.selection = "hard";
  d.sparsity_penalty = "token";
  d.gate_bias_init = "tau_logit";
  d.center_logits = false;
  d.usage_kl = 0.0;
  d.balance_coef = 0.0;
  d.alpha_hidden = 32;
  d.lambda_sparsity = 10.0;          // strong enough to hold E[k] against the reconstruction's pull
  d.recon_variance = static_cast<double>(D);  // unit-variance embeddings: recon ≈ 1/2 per token
  d.tau_decay = 0.99;                // reach τ_min within the run
  config.validate();
  DirmoeRouterImpl router(config);
  const torch::Tensor embeddings_VD = torch::randn({V, D});
  torch::optim::Adam optimizer(router.parameters(), torch::optim::AdamOptions(1e-2));
  for (int64_t step = 0; step < steps; ++step) {
    router.set_step(step);
    const torch::Tensor x_TD = embeddings_VD.index_select(0, torch::randint(V, {T}));
    const auto out = router.forward(x_TD);
    torch::Tensor loss = torch::zeros({});
    for (const auto& [name, l] : out.aux_losses) loss = loss + l;
    optimizer.zero_grad();
    loss.backward();
    torch::nn::utils::clip_grad_norm_(router.parameters(), 1.0);
    optimizer.step();
  }
  torch::NoGradGuard no_grad;
  double active = 0.0, expected = 0.0;
  const int batches = 20;
  for (int i = 0; i < batches; ++i) {
    const auto out = router.forward(embeddings_VD.index_select(0, torch::randint(V, {T})));
    active += out.metrics.at("active_experts").item<double>();
    expected += out.metrics.at("expected_active").item<double>();
  }
  *expected_active = expected / batches;
  return active / batches;
}
}  // namespace

TEST_CASE("dirmoe trained alone reaches its target expected active experts", "[router][dirmoe]") {
  torch::set_num_threads(1);
  for (int64_t k : {1, 2}) {
    const auto start = std::chrono::steady_clock::now();
    double expected = 0.0;
    const double active = control_active_experts(k, &expected);
    const double seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
    INFO("k=" << k << " measured active experts " << active << ", Σz̃ " << expected << ", " << seconds << " s");
    WARN("control k=" << k << ": active experts " << active << ", expected_active " << expected << ", " << seconds
                      << " s");
    CHECK(std::abs(active - static_cast<double>(k)) <= 0.03 * static_cast<double>(k));
  }
}
