// DirMoE's routing chain on CUDA (dirmoe_routing_chain.h): the per-token CUDA kernels
// (routing_chain_cuda.cu) against the tensor operators on the same device and against the CPU's
// per-token loops, every output and every gradient, for each probe of the outputs and each setting
// the passes branch on. The passes themselves (routing_chain_element.h) are checked on the CPU against
// autograd through the operators in tests/unit/test_router_dirmoe_routing_chain.cpp; here the question
// is whether the kernels run them on every token and read and write the right places.
// NOTE: torch before Catch: c10 defines a glog-style CHECK macro.
#include <torch/torch.h>
#include <catch2/catch.hpp>

#include <functional>
#include <string>
#include <vector>

#include "../support/router_test_util.h"
#include "dirmoe/router/dirmoe_routing_chain.h"
#include "dirmoe/router/element_kernels.h"

using dirmoe::DirmoeChainConstants;
using dirmoe::testing::scaled_max_abs_diff;

// a named namespace: the test sources are compiled in unity batches, where anonymous ones merge
namespace gpu_routing_chain_test {

// 1,000 tokens: eight thread blocks of 128, the last one partly idle
constexpr int64_t kTokens = 1000, kModel = 24, kHidden = 16;

/// Which outputs the probe loss reads (as in the CPU test): both paths, the LM path's r alone, the
/// losses' outputs alone.
enum class Probed { all, lm_only, losses_only };

struct ChainRun {
  std::vector<torch::Tensor> outputs;  // scores, r_lm, logits, z, alpha_q, r (CPU, float64)
  std::vector<torch::Tensor> grads;    // x and the eight parameters (CPU, float64; undefined where none)
};

/// The chain of `n_experts` experts on `device` in `dtype` from float64 inputs drawn from `seed` (the same
/// inputs on every device), then (after `between`, where given) the backward of a fixed random weighting
/// of the probed outputs.
ChainRun run_chain(const torch::Device& device, torch::ScalarType dtype, const DirmoeChainConstants& c, uint64_t seed,
                   Probed probed, int64_t n_experts = 8, const std::function<void()>& between = {}) {
  torch::Generator gen = at::detail::createCPUGenerator(seed);
  const auto f64 = torch::TensorOptions().dtype(torch::kFloat64);
  auto randn = [&](std::vector<int64_t> shape) { return torch::randn(shape, gen, f64); };
  auto rand = [&](std::vector<int64_t> shape) { return torch::rand(shape, gen, f64); };
  std::vector<torch::Tensor> host = {randn({kTokens, kModel}),  randn({n_experts, kModel}),  randn({n_experts}) - 1.0,
                                     randn({kHidden, kModel}),  randn({kHidden}),           randn({n_experts, kHidden}),
                                     randn({n_experts}),         randn({n_experts, kHidden}), randn({n_experts})};
  host[8][2] = 30.0;  // one α_hi head and one α_lo head beyond softplus's threshold of 20
  host[6][3] = 25.0;
  const torch::Tensor noise = torch::logit(rand({kTokens, n_experts}) * 0.98 + 0.01);
  const torch::Tensor gamma = rand({kTokens, n_experts}) * 2.0 + 0.05;
  const torch::Tensor dgamma = rand({kTokens, n_experts}) + 0.1;
  std::vector<torch::Tensor> probes;
  for (int i = 0; i < 5; ++i) probes.push_back(randn({kTokens, n_experts}));

  const auto on = torch::TensorOptions().dtype(dtype).device(device);
  std::vector<torch::Tensor> leaves;
  for (const auto& t : host) leaves.push_back(t.to(on).clone().requires_grad_(true));
  const dirmoe::DirmoeChainParameters p{leaves[1], leaves[2], leaves[3], leaves[4],
                                        leaves[5], leaves[6], leaves[7], leaves[8]};
  const dirmoe::GammaDrawFunction draw = [&](const torch::Tensor& alpha_q_TE) {
    REQUIRE(alpha_q_TE.device() == device);
    return std::make_pair(gamma.to(on), dgamma.to(on));
  };
  const dirmoe::DirmoeChainOutput out = dirmoe::dirmoe_routing_chain(leaves[0], p, noise.to(on), draw, c);
  auto probe = [&](int i, const torch::Tensor& t) { return (probes[static_cast<size_t>(i)].to(on) * t).sum(); };
  torch::Tensor loss;
  if (probed != Probed::losses_only) loss = probe(0, out.r_lm_TE);
  if (probed != Probed::lm_only) {
    const torch::Tensor losses =
        probe(1, out.logits_TE) + probe(2, out.z_soft_TE) + probe(3, out.alpha_q_TE) + probe(4, out.r_TE);
    loss = loss.defined() ? loss + losses : losses;
  }
  if (between) between();  // after the forward, before its backward
  loss.backward();

  ChainRun run;
  for (const auto& t : {out.scores_TE, out.r_lm_TE, out.logits_TE, out.z_soft_TE, out.alpha_q_TE, out.r_TE}) {
    REQUIRE(t.device() == device);
    run.outputs.push_back(t.detach().cpu().to(torch::kFloat64));
  }
  for (const auto& leaf : leaves) {
    run.grads.push_back(leaf.grad().defined() ? leaf.grad().cpu().to(torch::kFloat64) : torch::Tensor());
  }
  return run;
}

/// Every output and gradient of `a` against `b`'s (scaled max |a − b|), and the same gradients defined.
void check_same(const ChainRun& a, const ChainRun& b, double value_tolerance, double grad_tolerance) {
  const char* outputs[] = {"scores", "r_lm", "logits", "z", "alpha_q", "r"};
  for (size_t i = 0; i < a.outputs.size(); ++i) {
    INFO("output " << outputs[i]);
    CHECK(torch::isfinite(a.outputs[i]).all().item<bool>());
    CHECK(scaled_max_abs_diff(a.outputs[i], b.outputs[i]) < value_tolerance);
  }
  const char* grads[] = {"x", "gate.weight", "gate.bias", "hidden.weight", "hidden.bias",
                         "lo.weight", "lo.bias", "hi.weight", "hi.bias"};
  for (size_t i = 0; i < a.grads.size(); ++i) {
    INFO("gradient of " << grads[i]);
    REQUIRE(a.grads[i].defined() == b.grads[i].defined());
    if (a.grads[i].defined()) CHECK(scaled_max_abs_diff(a.grads[i], b.grads[i]) < grad_tolerance);
  }
}

}  // namespace gpu_routing_chain_test

using gpu_routing_chain_test::check_same;
using gpu_routing_chain_test::Probed;
using gpu_routing_chain_test::run_chain;

// Under gpu_check a build without the kernels fails here rather than comparing the operators with
// themselves, in this file and in test_gpu_dirichlet_kl.cpp (one switch and one build serve both).
TEST_CASE("the build runs DirMoE's routing chain and Dirichlet KL as CUDA kernels where the GPU check requires them",
          "[gpu][router][dirmoe]") {
  REQUIRE(torch::cuda::is_available());
  const bool on = dirmoe::element_passes_on(torch::Device(torch::kCUDA));
  INFO("element_passes_on(cuda) = " << on);
  if (dirmoe::testing::gpu_check_requires_kernels()) CHECK(on);
}

// Tolerances: in float64 the kernels, the operators and the CPU differ by the order of a few sums and
// the math library's last bits (1e-12); in float32 by float32's (values 1e-5, gradients 1e-4, as the
// router comparison in test_gpu_routers.cpp).
TEST_CASE("DirMoE's routing chain: the CUDA kernels compute the operators' and the CPU's values and gradients",
          "[gpu][router][dirmoe]") {
  REQUIRE(torch::cuda::is_available());
  const torch::Device cuda(torch::kCUDA), cpu(torch::kCPU);
  if (!dirmoe::testing::cuda_element_kernels_or_warn()) return;
  DirmoeChainConstants c = dirmoe::testing::nondefault_chain_constants();
  uint64_t seed = 1;
  for (const auto dtype : {torch::kFloat64, torch::kFloat32}) {
    const double value_tolerance = dtype == torch::kFloat64 ? 1e-12 : 1e-5;
    const double grad_tolerance = dtype == torch::kFloat64 ? 1e-12 : 1e-4;
    for (const bool reach : {false, true}) {
      for (const bool centred : {true, false}) {
        for (const double mix : {1e-3, 0.0}) {
          for (const Probed probed : {Probed::all, Probed::lm_only, Probed::losses_only}) {
            c.losses_reach_input = reach;
            c.center_logits = centred;
            c.theta_mix = mix;
            DYNAMIC_SECTION(dtype << ", losses reach x " << reach << ", centred " << centred << ", mix " << mix
                                  << ", probe " << static_cast<int>(probed)) {
              c.element_loops = true;
              const auto kernels = run_chain(cuda, dtype, c, seed, probed);
              const auto cpu_loops = run_chain(cpu, dtype, c, seed, probed);
              c.element_loops = false;
              const auto operators = run_chain(cuda, dtype, c, seed, probed);
              {
                INFO("CUDA kernels against CUDA operators");
                check_same(kernels, operators, value_tolerance, grad_tolerance);
              }
              {
                INFO("CUDA kernels against the CPU loops");
                check_same(kernels, cpu_loops, value_tolerance, grad_tolerance);
              }
            }
            ++seed;
          }
        }
      }
    }
  }
  SECTION("switched off (bench_suite --cuda-element-kernels false), the chain runs as the operators") {
    struct Restore {
      ~Restore() { dirmoe::set_cuda_element_kernels_enabled(true); }
    } restore;
    c.losses_reach_input = false;
    c.center_logits = true;
    c.theta_mix = 1e-3;
    c.element_loops = true;
    const auto kernels = run_chain(cuda, torch::kFloat64, c, 78, Probed::all);
    dirmoe::set_cuda_element_kernels_enabled(false);
    CHECK_FALSE(dirmoe::element_passes_on(cuda));
    const auto off = run_chain(cuda, torch::kFloat64, c, 78, Probed::all);
    check_same(kernels, off, 1e-12, 1e-12);
    // switched between a forward and its backward (either way): the backward runs where its forward ran
    dirmoe::set_cuda_element_kernels_enabled(true);
    const auto on_then_off = run_chain(cuda, torch::kFloat64, c, 78, Probed::all, 8,
                                       [] { dirmoe::set_cuda_element_kernels_enabled(false); });
    const auto off_then_on = run_chain(cuda, torch::kFloat64, c, 78, Probed::all, 8,
                                       [] { dirmoe::set_cuda_element_kernels_enabled(true); });
    check_same(on_then_off, kernels, 1e-12, 1e-12);
    check_same(off_then_on, kernels, 1e-12, 1e-12);
  }
  SECTION("five experts (E is a run-time size of the kernels), float64") {
    c.losses_reach_input = false;
    c.center_logits = true;
    c.theta_mix = 1e-3;
    c.element_loops = true;
    const auto kernels = run_chain(cuda, torch::kFloat64, c, 77, Probed::all, /*n_experts=*/5);
    const auto cpu_loops = run_chain(cpu, torch::kFloat64, c, 77, Probed::all, 5);
    c.element_loops = false;
    const auto operators = run_chain(cuda, torch::kFloat64, c, 77, Probed::all, 5);
    check_same(kernels, operators, 1e-12, 1e-12);
    check_same(kernels, cpu_loops, 1e-12, 1e-12);
  }
}

// The α MLP's hidden layer in bf16 changes only the GEMMs around the passes; the passes read its
// widened product. cuBLAS and oneDNN may round a bf16 product to neighbouring values, so this compares
// the kernels with the operators on the same device only.
TEST_CASE("DirMoE's routing chain with the α MLP in bf16: the CUDA kernels compute the operators' values and gradients",
          "[gpu][router][dirmoe]") {
  REQUIRE(torch::cuda::is_available());
  const torch::Device cuda(torch::kCUDA);
  if (!dirmoe::testing::cuda_element_kernels_or_warn()) return;
  DirmoeChainConstants c;
  c.alpha_mlp_bf16 = true;
  c.theta_mix = 1e-3;
  uint64_t seed = 101;
  for (const bool reach : {false, true}) {
    for (const Probed probed : {Probed::all, Probed::lm_only, Probed::losses_only}) {
      c.losses_reach_input = reach;
      DYNAMIC_SECTION("losses reach x " << reach << ", probe " << static_cast<int>(probed)) {
        c.element_loops = true;
        const auto kernels = run_chain(cuda, torch::kFloat32, c, seed, probed);
        c.element_loops = false;
        const auto operators = run_chain(cuda, torch::kFloat32, c, seed, probed);
        check_same(kernels, operators, 1e-5, 1e-4);
      }
      ++seed;
    }
  }
}
