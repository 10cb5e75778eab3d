// Softmax top-k / Switch router: forward and gradients against an independent Python reference,
// eval determinism, and the balance loss lowering the load CV.
#include <catch2/catch.hpp>
#include <torch/torch.h>

#include "../support/python_reference.h"
#include "../support/router_test_util.h"
#include "dirmoe/router/router_registry.h"
#include "dirmoe/router/topk_router.h"

using dirmoe::testing::max_abs_diff;
using dirmoe::testing::router_test_config;
using dirmoe::testing::scalar;

namespace {

struct TopkCase {
  int64_t k;
  bool renormalize;
  double jitter;
  bool training;
};

void check_against_reference(const TopkCase& c) {
  torch::manual_seed(11 + c.k);
  const int64_t T = 24, D = 10, E = 6;
  auto config = router_test_config("topk", D, E, c.k);
  config.router.topk.renormalize = c.renormalize;
  config.router.topk.balance_coef = 0.3;
  config.router.topk.z_loss_coef = 0.05;
  config.router.topk.jitter = c.jitter;
  auto router = dirmoe::make_router(config);
  router->to(torch::kFloat64);
  router->train(c.training);

  auto x = torch::randn({T, D}, torch::kFloat64).requires_grad_(true);
  const auto c_TE = torch::randn({T, E}, torch::kFloat64);
  const double m_balance = 1.7, m_z = -0.9;
  dirmoe::RouterNoise noise;
  noise.uniform_TD = torch::rand({T, D}, torch::kFloat64);

  auto out = router->forward(x, noise);
  auto S = (c_TE * out.weights_TE).sum() + m_balance * out.aux_losses.at("topk_balance") +
           m_z * out.aux_losses.at("topk_z");
  S.backward();
  const auto w = router->named_parameters()["weight"];

  auto ref = dirmoe::testing::run_python_reference(
      "topk_reference.py", {{"x", x.detach()}, {"w", w.detach()}, {"k", torch::full({}, c.k, torch::kInt64)},
                            {"renormalize", scalar(c.renormalize)}, {"balance_coef", scalar(0.3)},
                            {"z_loss_coef", scalar(0.05)}, {"jitter", scalar(c.jitter)},
                            {"training", scalar(c.training)}, {"jitter_u", noise.uniform_TD}, {"c", c_TE},
                            {"m_balance", scalar(m_balance)}, {"m_z", scalar(m_z)}});
  CHECK(out.dispatch_mask_TE.dtype() == torch::kBool);
  CHECK(torch::equal(out.dispatch_mask_TE, ref.at("mask")));
  CHECK((out.dispatch_mask_TE.sum(1) == c.k).all().item<bool>());
  CHECK(max_abs_diff(out.weights_TE, ref.at("weights")) < 1e-6);
  CHECK(max_abs_diff(out.aux_losses.at("topk_balance"), ref.at("topk_balance")) < 1e-6);
  CHECK(max_abs_diff(out.aux_losses.at("topk_z"), ref.at("topk_z")) < 1e-6);
  CHECK(max_abs_diff(x.grad(), ref.at("grad_x")) < 1e-6);
  CHECK(max_abs_diff(w.grad(), ref.at("grad_w")) < 1e-6);
  CHECK(out.metrics.at("active_experts").item<double>() == Approx(c.k));
}

}  // namespace

TEST_CASE("topk router is registered and has E·D parameters", "[router]") {
  auto router = dirmoe::make_router(router_test_config("topk", 16, 8, 1));
  CHECK(router->name() == "topk");
  int64_t n = 0;
  for (const auto& p : router->parameters()) n += p.numel();
  CHECK(n == 16 * 8);
}

TEST_CASE("topk router matches the Python reference in float64", "[router]") {
  REQUIRE(dirmoe::testing::python_reference_available());
  SECTION("Switch: k=1, training, no jitter") { check_against_reference({1, false, 0.0, true}); }
  SECTION("k=2, renormalised, training with jitter") { check_against_reference({2, true, 0.2, true}); }
  SECTION("k=2, eval (jitter configured but off)") { check_against_reference({2, false, 0.2, false}); }
}

TEST_CASE("topk router: eval is deterministic, training jitter is drawn", "[router]") {
  torch::manual_seed(3);
  auto config = router_test_config("topk", 8, 4, 2);
  config.router.topk.jitter = 0.3;
  auto router = dirmoe::make_router(config);
  const auto x = torch::randn({64, 8});
  router->eval();
  const auto a = router->forward(x);
  const auto b = router->forward(x);
  CHECK(torch::equal(a.weights_TE, b.weights_TE));
  CHECK(torch::equal(a.dispatch_mask_TE, b.dispatch_mask_TE));
  router->train();
  const auto c = router->forward(x);
  const auto d = router->forward(x);
  CHECK_FALSE(torch::equal(c.weights_TE, d.weights_TE));
}

TEST_CASE("Switch balance loss lowers the load CV on skewed inputs", "[router]") {
  // Router trained alone. Task: L2 loss pulling each token's combine weight to 1 — indifferent to
  // which expert is chosen, so without the balance loss the skew of the inputs stays.
  const int64_t T = 512, D = 16, E = 4;
  torch::manual_seed(5);
  const auto direction_D = torch::randn({D});
  const auto x_TD = torch::randn({T, D}) + 1.5 * direction_D;  // shared component skews routing
  auto train_cv = [&](double balance_coef) {
    torch::manual_seed(7);  // same router init for both runs
    auto config = router_test_config("topk", D, E, 1, /*init_std=*/0.3);
    config.router.topk.balance_coef = balance_coef;
    config.router.topk.z_loss_coef = 0.0;
    auto router = dirmoe::make_router(config);
    torch::optim::Adam opt(router->parameters(), torch::optim::AdamOptions(2e-2));
    router->eval();
    const double cv_start = router->forward(x_TD).metrics.at("load_cv").item<double>();
    router->train();
    for (int step = 0; step < 150; ++step) {
      auto out = router->forward(x_TD);
      auto loss = (1.0 - out.weights_TE.sum(1)).pow(2).mean() + out.aux_losses.at("topk_balance");
      opt.zero_grad();
      loss.backward();
      opt.step();
    }
    router->eval();
    const double cv_end = router->forward(x_TD).metrics.at("load_cv").item<double>();
    return std::make_pair(cv_start, cv_end);
  };
  const auto [start_without, without] = train_cv(0.0);
  const auto [start_with, with] = train_cv(0.5);
  INFO("load CV at init " << start_without << ", after training without balance loss " << without
                          << ", with " << with);
  CHECK(start_without == Approx(start_with));
  CHECK(without > 0.8);  // the inputs are skewed and stay so without the loss
  CHECK(with < 0.5 * without);
}
