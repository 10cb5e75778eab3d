// Every registered router on CUDA against the same router on the CPU: same weights, same inputs,
// same random draws (passed in through RouterNoise), forward and backward, training and eval.
// [gpu]: ctest -L gpu (scripts/gpu_check.sh) runs these where a CUDA device answers.
// NOTE: torch before Catch: c10 defines a glog-style CHECK macro.
#include <torch/torch.h>
#include <catch2/catch.hpp>

#include <string>

#include "../support/router_test_util.h"
#include "../support/step_harness.h"
#include "dirmoe/router/router_registry.h"

using namespace dirmoe;
using dirmoe::testing::relative_error;
using dirmoe::testing::router_test_config;

namespace {

/// Draws for every RouterNoise field a router may read, on the CPU, away from the ends of (0, 1)
/// so that no draw sits on a decision boundary the two devices could round differently.
RouterNoise cpu_noise(int64_t T, int64_t D, int64_t E, int64_t k) {
  torch::Generator gen = at::detail::createCPUGenerator(/*seed_in=*/99);
  auto uniform = [&](std::vector<int64_t> shape) { return 0.05 + 0.9 * torch::rand(shape, gen); };
  RouterNoise n;
  n.uniform_TE = uniform({T, E});
  n.gamma_TE = 0.2 + 2.0 * torch::rand({T, E}, gen);  // positive Gamma-like draws
  n.extra_TE = uniform({T, E});
  n.uniform_TD = uniform({T, D});
  n.uniform_TK = uniform({T, k});
  return n;
}

RouterNoise to_device(const RouterNoise& n, const torch::Device& device) {
  RouterNoise out;
  out.uniform_TE = n.uniform_TE.to(device);
  out.gamma_TE = n.gamma_TE.to(device);
  out.extra_TE = n.extra_TE.to(device);
  out.uniform_TD = n.uniform_TD.to(device);
  out.uniform_TK = n.uniform_TK.to(device);
  return out;
}

struct RouterRun {
  RouterOutput out;
  torch::Tensor x_grad;
  std::map<std::string, torch::Tensor> param_grads;
};

/// Forward, then backward of Σ c·weights + Σ aux losses.
RouterRun run_router(RouterImpl& router, const torch::Tensor& x_cpu, const torch::Tensor& c_cpu,
                     const RouterNoise& noise_cpu, const torch::Device& device) {
  router.zero_grad();
  RouterRun r;
  // a fresh leaf per run (to() returns the tensor itself when it is already there)
  const torch::Tensor x = x_cpu.to(device).clone().requires_grad_(true);
  r.out = router.forward(x, to_device(noise_cpu, device));
  torch::Tensor loss = (r.out.weights_TE * c_cpu.to(device)).sum();
  for (const auto& [name, v] : r.out.aux_losses) loss = loss + v;
  loss.backward();
  r.x_grad = x.grad();
  for (const auto& p : router.named_parameters()) {
    if (p.value().grad().defined()) r.param_grads[p.key()] = p.value().grad().cpu();
  }
  return r;
}

/// The router of `config` built twice from one seed, once on the CPU and once on CUDA, run forward and
/// backward on the same inputs and draws: the dispatch masks agree exactly, the weights and the aux
/// losses to `value_tolerance`, x's and the parameters' gradients to `grad_tolerance` (relative L2;
/// references under 1e-6 in norm count as 1e-6).
void check_cuda_matches_cpu(const Config& config, bool training, double value_tolerance, double grad_tolerance) {
  const int64_t T = 96, D = config.model.d_model, E = config.model.n_experts, k = config.model.n_experts_active;
  const torch::Device cuda(torch::kCUDA);
  torch::Generator gen = at::detail::createCPUGenerator(/*seed_in=*/5);
  const torch::Tensor x_TD = torch::randn({T, D}, gen);
  const torch::Tensor c_TE = torch::randn({T, E}, gen);
  const RouterNoise noise = cpu_noise(T, D, E, k);
  torch::manual_seed(11);
  auto on_cpu = make_router(config);
  torch::manual_seed(11);
  auto on_cuda = make_router(config);
  on_cuda->to(cuda);
  on_cpu->train(training);
  on_cuda->train(training);

  const RouterRun a = run_router(*on_cpu, x_TD, c_TE, noise, torch::kCPU);
  const RouterRun b = run_router(*on_cuda, x_TD, c_TE, noise, cuda);
  CHECK(b.out.dispatch_mask_TE.device().is_cuda());
  CHECK(torch::equal(b.out.dispatch_mask_TE.cpu(), a.out.dispatch_mask_TE));
  CHECK(relative_error(b.out.weights_TE, a.out.weights_TE) < value_tolerance);
  REQUIRE(b.out.aux_losses.size() == a.out.aux_losses.size());
  for (const auto& [name, value] : a.out.aux_losses) {
    INFO("aux loss " << name);
    REQUIRE(b.out.aux_losses.count(name) == 1);
    CHECK(relative_error(b.out.aux_losses.at(name), value, /*floor=*/1e-6) < value_tolerance);
  }
  CHECK(relative_error(b.x_grad, a.x_grad, /*floor=*/1e-6) < grad_tolerance);
  REQUIRE(b.param_grads.size() == a.param_grads.size());
  for (const auto& [name, grad] : a.param_grads) {
    INFO("gradient of " << name);
    REQUIRE(b.param_grads.count(name) == 1);
    CHECK(relative_error(b.param_grads.at(name), grad, /*floor=*/1e-6) < grad_tolerance);
  }
}

}  // namespace

// Tolerances: both sides compute in float32 from the same draws, so they differ only by
// summation order and the CUDA math library's last bits: forward values and the aux losses agree
// to 1e-5, gradients to 1e-4.
TEST_CASE("each router computes the same forward and backward on CUDA as on the CPU", "[gpu][router]") {
  REQUIRE(torch::cuda::is_available());
  for (const std::string& type : registered_routers()) {
    for (const bool training : {true, false}) {
      DYNAMIC_SECTION(type << (training ? " (training)" : " (eval)")) {
        check_cuda_matches_cpu(router_test_config(type, /*d_model=*/32, /*n_experts=*/8, /*k=*/2, /*init_std=*/0.3),
                               training, 1e-5, 1e-4);
      }
    }
  }
}

// DirMoE with its α MLP's hidden layer in bf16 (router.dirmoe.alpha_mlp_precision = bf16): cuBLAS and
// oneDNN both accumulate the bf16 products in float32, but in their own order, so a product can round to
// the neighbouring bf16 value (2^-8 relative) on one side; the tolerances allow for a few such elements.
// The gate stays in float32, so the dispatch masks still agree exactly.
TEST_CASE("DirMoE's α MLP in bf16 computes on CUDA what it computes on the CPU", "[gpu][router]") {
  REQUIRE(torch::cuda::is_available());
  Config config = router_test_config("dirmoe", /*d_model=*/32, /*n_experts=*/8, /*k=*/1, /*init_std=*/0.3);
  config.router.dirmoe.alpha_mlp_precision = "bf16";
  check_cuda_matches_cpu(config, /*training=*/true, 1e-2, 2e-2);
}
