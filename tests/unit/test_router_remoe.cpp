// ReMoE router: forward and gradients against an independent Python reference, the λ controller
// rule, λ in checkpoints, and the controller reaching its target sparsity.
#include <cmath>
#include <sstream>

#include <catch2/catch.hpp>
#include <torch/torch.h>

#include "../support/python_reference.h"
#include "../support/router_test_util.h"
#include "dirmoe/router/remoe_router.h"
#include "dirmoe/router/router_registry.h"

using dirmoe::testing::max_abs_diff;
using dirmoe::testing::router_test_config;
using dirmoe::testing::scalar;

TEST_CASE("remoe router matches the Python reference in float64", "[router]") {
  REQUIRE(dirmoe::testing::python_reference_available());
  torch::manual_seed(21);
  const int64_t T = 24, D = 10, E = 6, k = 2;
  auto config = router_test_config("remoe", D, E, k);
  config.router.remoe.lambda_init = 0.3;  // large enough that the regulariser's gradient shows
  auto router = dirmoe::make_router(config);
  CHECK(router->name() == "remoe");
  router->to(torch::kFloat64);
  router->train();

  auto x = torch::randn({T, D}, torch::kFloat64).requires_grad_(true);
  const auto c_TE = torch::randn({T, E}, torch::kFloat64);
  const double m_l1 = 2.5;
  auto out = router->forward(x);
  ((c_TE * out.weights_TE).sum() + m_l1 * out.aux_losses.at("remoe_l1")).backward();
  const auto w = router->named_parameters()["weight"];

  auto ref = dirmoe::testing::run_python_reference(
      "remoe_reference.py", {{"x", x.detach()}, {"w", w.detach()}, {"k", torch::full({}, k, torch::kInt64)},
                             {"lam", scalar(0.3)}, {"c", c_TE}, {"m_l1", scalar(m_l1)}});
  CHECK(torch::equal(out.dispatch_mask_TE, ref.at("mask")));
  CHECK(max_abs_diff(out.weights_TE, ref.at("weights")) < 1e-6);
  CHECK(max_abs_diff(out.aux_losses.at("remoe_l1"), ref.at("remoe_l1")) < 1e-6);
  CHECK(max_abs_diff(x.grad(), ref.at("grad_x")) < 1e-6);
  CHECK(max_abs_diff(w.grad(), ref.at("grad_w")) < 1e-6);
  const double sparsity = ref.at("sparsity").item<double>();
  CHECK(out.metrics.at("sparsity").item<double>() == Approx(sparsity).margin(1e-6));
  CHECK(out.metrics.at("active_experts").item<double>() == Approx(E * (1 - sparsity)).margin(1e-5));
  CHECK(out.metrics.at("lambda").item<double>() == Approx(0.3));
  // the regulariser must matter for the gradient check to mean something
  CHECK(sparsity > 0.0);
  CHECK(sparsity < 1.0);
}

TEST_CASE("remoe controller: λ·1.2 below target sparsity, λ/1.2 above, kept in checkpoints", "[router]") {
  torch::manual_seed(2);
  const int64_t D = 8, E = 4, k = 1;  // target sparsity 0.75
  auto config = router_test_config("remoe", D, E, k);
  auto router = std::dynamic_pointer_cast<dirmoe::RemoeRouterImpl>(dirmoe::make_router(config));
  REQUIRE(router);
  CHECK(router->target_sparsity() == Approx(0.75));
  CHECK(router->lambda.item<double>() == Approx(1e-8));

  router->update_controller();  // nothing measured yet: λ stays
  CHECK(router->lambda.item<double>() == Approx(1e-8));

  router->train();
  const auto x = torch::randn({200, D});
  {
    torch::NoGradGuard no_grad;
    router->weight.fill_(0.1);  // every R > 0: sparsity 0 < 0.75
  }
  router->forward(x.abs());
  router->update_controller();
  CHECK(router->lambda.item<double>() == Approx(1.2e-8));
  {
    torch::NoGradGuard no_grad;
    router->weight.fill_(-0.1);  // every R = 0: sparsity 1 > 0.75
  }
  router->forward(x.abs());
  router->forward(x.abs());
  CHECK(router->measured_sparsity().item<double>() == Approx(1.0));
  router->update_controller();
  CHECK(router->lambda.item<double>() == Approx(1e-8));
  router->eval();
  router->forward(x.abs());  // eval forwards are not measured
  router->update_controller();
  CHECK(router->lambda.item<double>() == Approx(1e-8));

  router->lambda.fill_(0.0375);
  std::stringstream stream;
  {
    torch::serialize::OutputArchive archive;
    router->save(archive);
    archive.save_to(stream);
  }
  auto restored = std::dynamic_pointer_cast<dirmoe::RemoeRouterImpl>(dirmoe::make_router(config));
  {
    torch::serialize::InputArchive archive;
    archive.load_from(stream);
    restored->load(archive);
  }
  CHECK(restored->lambda.item<double>() == Approx(0.0375));
}

TEST_CASE("remoe controller reaches the target sparsity when the router trains alone", "[router]") {
  // Fixed random token embeddings with a shared mean component, as hidden states have. Task: L2
  // regression of y_t = Σ_e R_te·v_e (fixed expert outputs v_e) onto a dense teacher's outputs
  // Σ_e |x_t·W*_e|·v_e, which on its own wants every expert active.
  // NOTE: with zero-mean isotropic x a bias-free ReLU gate is active on about half the tokens
  // whatever its weights, so sparsity could not pass 0.5; the shared component makes it steerable.
  // Adam without momentum (β1 = 0): momentum adds lag to the bang-bang λ loop and widens its
  // limit cycle around the target.
  torch::manual_seed(31);
  const int64_t T = 256, D = 32, E = 8, k = 2;  // target sparsity 1 − 2/8 = 0.75
  const auto x_TD = torch::randn({T, D}) + torch::randn({D});
  const auto v_ED = torch::randn({E, D});
  const auto teacher_ED = torch::randn({E, D}) / std::sqrt(static_cast<double>(D));
  const auto target_TD = torch::matmul(torch::matmul(x_TD, teacher_ED.t()).abs(), v_ED);
  auto router = std::dynamic_pointer_cast<dirmoe::RemoeRouterImpl>(
      dirmoe::make_router(router_test_config("remoe", D, E, k, /*init_std=*/0.05)));
  torch::optim::Adam opt(router->parameters(), torch::optim::AdamOptions(1e-2).betas({0.0, 0.99}));
  router->train();
  double sparsity_sum = 0.0, active_sum = 0.0, first_sparsity = -1.0;
  int n = 0;
  const int steps = 300, tail = 100;
  for (int step = 0; step < steps; ++step) {
    auto out = router->forward(x_TD);
    auto task = (torch::matmul(out.weights_TE, v_ED) - target_TD).pow(2).mean();
    auto loss = task + out.aux_losses.at("remoe_l1");
    opt.zero_grad();
    loss.backward();
    opt.step();
    router->update_controller();
    if (step == 0) first_sparsity = out.metrics.at("sparsity").item<double>();
    if (step >= steps - tail) {
      sparsity_sum += out.metrics.at("sparsity").item<double>();
      active_sum += out.metrics.at("active_experts").item<double>();
      ++n;
    }
  }
  const double sparsity = sparsity_sum / n, active = active_sum / n;
  INFO("sparsity at step 0 " << first_sparsity << "; mean over the last " << tail << " steps " << sparsity
                             << ", active experts " << active << ", λ " << router->lambda.item<double>());
  CHECK(router->lambda.item<double>() > 1e-5);  // the controller, not the task, made it sparse
  CHECK(sparsity == Approx(0.75).margin(0.025));
  CHECK(active == Approx(2.0).margin(0.2));
}
