// SparseMixer-v2 router: forward and gradients against an independent Python reference, the
// custom backward against its closed form, the forward-scale statistics and eval determinism.
#include <cmath>

#include <catch2/catch.hpp>
#include <torch/torch.h>

#include "../support/python_reference.h"
#include "../support/router_test_util.h"
#include "dirmoe/router/router_registry.h"
#include "dirmoe/router/sparsemixer_router.h"

using dirmoe::testing::max_abs_diff;
using dirmoe::testing::router_test_config;
using dirmoe::testing::scalar;

namespace {

void check_against_reference(int64_t k, bool training, double eps, bool expect_sampling) {
  torch::manual_seed(41 + k);
  const int64_t T = 32, D = 8, E = 6;
  auto config = router_test_config("sparsemixer", D, E, k, /*init_std=*/0.5);
  config.router.sparsemixer.jitter_eps = eps;
  config.router.sparsemixer.balance_coef = 0.3;
  auto router = dirmoe::make_router(config);
  router->to(torch::kFloat64);
  router->train(training);

  auto x = torch::randn({T, D}, torch::kFloat64).requires_grad_(true);
  const auto c_TE = torch::randn({T, E}, torch::kFloat64);
  const double m_balance = 1.9;
  dirmoe::RouterNoise noise;
  noise.uniform_TE = torch::rand({T, E}, torch::kFloat64);
  noise.extra_TE = torch::rand({T, E}, torch::kFloat64);
  noise.uniform_TK = torch::rand({T, k}, torch::kFloat64);
  auto out = router->forward(x, noise);
  ((c_TE * out.weights_TE).sum() + m_balance * out.aux_losses.at("sparsemixer_balance")).backward();
  const auto w = router->named_parameters()["weight"];

  auto ref = dirmoe::testing::run_python_reference(
      "sparsemixer_reference.py",
      {{"x", x.detach()}, {"w", w.detach()}, {"k", torch::full({}, k, torch::kInt64)}, {"eps", scalar(eps)},
       {"balance_coef", scalar(0.3)}, {"training", scalar(training)}, {"u1", noise.uniform_TE},
       {"u2", noise.extra_TE}, {"us", noise.uniform_TK}, {"c", c_TE}, {"m_balance", scalar(m_balance)}});
  CHECK(torch::equal(out.dispatch_mask_TE, ref.at("mask")));
  CHECK((out.dispatch_mask_TE.sum(1) == k).all().item<bool>());
  CHECK(max_abs_diff(out.weights_TE, ref.at("weights")) < 1e-6);
  CHECK(max_abs_diff(out.aux_losses.at("sparsemixer_balance"), ref.at("sparsemixer_balance")) < 1e-6);
  CHECK(max_abs_diff(x.grad(), ref.at("grad_x")) < 1e-6);
  CHECK(max_abs_diff(w.grad(), ref.at("grad_w")) < 1e-6);
  if (expect_sampling) {
    // the case must exercise what it claims: sampled non-argmax choices and both scales
    const auto scales = ref.at("scales");
    CHECK((scales < 0.5).any().item<bool>());
    CHECK((out.metrics.at("candidates").item<double>() > 1.5));
  }
}

}  // namespace

TEST_CASE("sparsemixer router matches the Python reference in float64", "[router]") {
  REQUIRE(dirmoe::testing::python_reference_available());
  SECTION("k=1, training") { check_against_reference(1, true, 0.4, true); }
  SECTION("k=2, training") { check_against_reference(2, true, 0.4, true); }
  SECTION("k=2, training, default ε = 0.01") { check_against_reference(2, true, 0.01, false); }
  SECTION("k=2, eval") { check_against_reference(2, false, 0.4, false); }
}

TEST_CASE("sparsemixer custom backward equals ∂z = −p·ĝ + onehot(D)·ĝ, ĝ = g·p[D]", "[router]") {
  torch::manual_seed(8);
  const int64_t T = 16, E = 5;
  auto scores_TE = torch::randn({T, E}, torch::kFloat64).requires_grad_(true);
  // a masked softmax: expert 4 masked for every token, so p = 0 there
  auto masked_TE = scores_TE.detach().clone();
  masked_TE.select(1, 4).fill_(-INFINITY);
  const auto p_TE = torch::softmax(masked_TE, 1);
  const auto choice_T1 = torch::randint(0, 4, {T, 1}, torch::kInt64);
  const auto scale_T1 = torch::where(torch::rand({T, 1}) > 0.5, torch::ones({T, 1}), torch::full({T, 1}, 1.0 / 3))
                            .to(torch::kFloat64);
  const auto g_T1 = torch::randn({T, 1}, torch::kFloat64);

  auto w_T1 = dirmoe::sparsemixer_choice_weight(scores_TE, p_TE, choice_T1, scale_T1);
  CHECK(max_abs_diff(w_T1, p_TE.gather(1, choice_T1) * scale_T1) < 1e-12);
  (w_T1 * g_T1).sum().backward();

  // closed form, element by element
  auto expected = torch::zeros({T, E}, torch::kFloat64);
  auto pa = p_TE.accessor<double, 2>();
  auto ea = expected.accessor<double, 2>();
  for (int64_t t = 0; t < T; ++t) {
    const int64_t d = choice_T1[t][0].item<int64_t>();
    const double ghat = g_T1[t][0].item<double>() * pa[t][d];
    for (int64_t e = 0; e < E; ++e) ea[t][e] = -pa[t][e] * ghat + (e == d ? ghat : 0.0);
  }
  CHECK(max_abs_diff(scores_TE.grad(), expected) < 1e-12);
  CHECK(scores_TE.grad().select(1, 4).abs().max().item<double>() == 0.0);  // masked: no gradient
}

TEST_CASE("sparsemixer forward scale is 1 at the argmax and 1 w.p. 1/4 elsewhere (else 1/3)", "[router]") {
  // ε = 1 masks nothing ((z*−z_i)/max(|z_i|, z*) < 2 always), so p = softmax(z) for k = 1.
  torch::manual_seed(12);
  const int64_t T = 20000, D = 8, E = 4;
  auto config = router_test_config("sparsemixer", D, E, 1, /*init_std=*/0.3);
  config.router.sparsemixer.jitter_eps = 1.0;
  auto router = std::dynamic_pointer_cast<dirmoe::SparseMixerRouterImpl>(dirmoe::make_router(config));
  router->train();
  const auto x_TD = torch::randn({T, D});
  torch::NoGradGuard no_grad;
  const auto out = router->forward(x_TD);
  const auto p_TE = torch::softmax(torch::matmul(x_TD, router->weight.t()).to(torch::kFloat64), 1);
  const auto choice_T = out.dispatch_mask_TE.to(torch::kInt64).argmax(1);
  const auto argmax_T = p_TE.argmax(1);
  const auto ratio_T = out.weights_TE.to(torch::kFloat64).sum(1) / p_TE.gather(1, choice_T.unsqueeze(1)).squeeze(1);
  const auto is_one = (ratio_T - 1.0).abs() < 1e-4;
  const auto is_third = (ratio_T - 1.0 / 3).abs() < 1e-4;
  CHECK((is_one | is_third).all().item<bool>());

  const auto at_argmax = choice_T == argmax_T;
  CHECK(is_one.masked_select(at_argmax).all().item<bool>());
  const auto elsewhere = ~at_argmax;
  const double n_else = elsewhere.sum().item<double>();
  REQUIRE(n_else > 5000);
  const double frac_one = is_one.masked_select(elsewhere).to(torch::kFloat64).mean().item<double>();
  const double sigma = std::sqrt(0.25 * 0.75 / n_else);
  INFO("non-argmax choices " << n_else << ", fraction with scale 1: " << frac_one);
  CHECK(std::abs(frac_one - 0.25) < 3 * sigma);

  // Gumbel-max: P(choice = e) = p_e, so the argmax is chosen with probability mean_t max_e p_te
  const double expect_argmax = std::get<0>(p_TE.max(1)).mean().item<double>();
  const double frac_argmax = at_argmax.to(torch::kFloat64).mean().item<double>();
  const double sigma_argmax = std::sqrt(expect_argmax * (1 - expect_argmax) / T);
  CHECK(std::abs(frac_argmax - expect_argmax) < 3 * sigma_argmax);
}

TEST_CASE("sparsemixer eval is deterministic top-k of the masked softmax", "[router]") {
  torch::manual_seed(13);
  const int64_t T = 64, D = 8, E = 6;
  auto config = router_test_config("sparsemixer", D, E, 2, /*init_std=*/0.5);
  config.router.sparsemixer.jitter_eps = 1.0;  // nothing masked in round 1
  auto router = std::dynamic_pointer_cast<dirmoe::SparseMixerRouterImpl>(dirmoe::make_router(config));
  router->eval();
  const auto x_TD = torch::randn({T, D});
  const auto a = router->forward(x_TD);
  const auto b = router->forward(x_TD);
  CHECK(torch::equal(a.weights_TE, b.weights_TE));
  CHECK(torch::equal(a.dispatch_mask_TE, b.dispatch_mask_TE));
  const auto z_TE = torch::matmul(x_TD, router->weight.t()).detach();
  const auto top2 = std::get<1>(z_TE.topk(2, 1));
  const auto expected_mask = torch::zeros({T, E}, torch::kBool).scatter(1, top2, true);
  CHECK(torch::equal(a.dispatch_mask_TE, expected_mask));
  // first choice: softmax over all experts (ε = 1 masks nothing)
  const auto p_TE = torch::softmax(z_TE, 1);
  CHECK(max_abs_diff(a.weights_TE.gather(1, top2.narrow(1, 0, 1)), p_TE.gather(1, top2.narrow(1, 0, 1))) < 1e-6);
}
