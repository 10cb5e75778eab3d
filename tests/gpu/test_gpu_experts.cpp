// The CUDA expert paths against a float64 CPU reference: the grouped GEMM (at::_grouped_mm, bf16,
// groups padded to multiples of 8), the per-expert loop and the fused path in float32, forward and
// every gradient, and a whole MoE layer on CUDA (fp32 and bf16 autocast) against the CPU.
// [gpu]: ctest -L gpu (scripts/gpu_check.sh) runs these where a CUDA device answers.
// NOTE: torch before Catch: c10 defines a glog-style CHECK macro.
#include <torch/torch.h>
#include <catch2/catch.hpp>

#include <vector>

#include "../support/step_harness.h"
#include "dirmoe/model/moe_layer.h"
#include "dirmoe/model/swiglu_experts.h"
#include "dirmoe/router/router_registry.h"
#include "dirmoe/train/train_step.h"

using namespace dirmoe;
using dirmoe::testing::relative_error;

namespace {

struct ExpertGrads {
  torch::Tensor y, x, w_gate, w_up, w_down;
};

enum class Path { kLoop, kFused, kGrouped };

/// y = experts(x) by `path` and the gradients of Σ y·g, everything returned on the CPU.
ExpertGrads run_experts(SwigluExperts& experts, const torch::Tensor& x_ND, const torch::Tensor& g_ND,
                        const torch::Tensor& counts_E, const torch::Device& device, Path path) {
  experts->zero_grad();
  const torch::Tensor x = x_ND.to(device).clone().requires_grad_(true);  // a fresh leaf per run
  const torch::Tensor counts = counts_E.to(device);
  const torch::Tensor y = path == Path::kGrouped ? experts->forward_grouped(x, counts)
                          : path == Path::kFused ? experts->forward_fused(x, counts)
                                                 : experts->forward_loop(x, counts);
  (y * g_ND.to(device, y.scalar_type())).sum().backward();
  return {y.cpu(), x.grad().cpu(), experts->w_gate.grad().cpu(), experts->w_up.grad().cpu(),
          experts->w_down.grad().cpu()};
}

void check_close(const ExpertGrads& got, const ExpertGrads& ref, double tol) {
  CHECK(relative_error(got.y, ref.y) < tol);
  CHECK(relative_error(got.x, ref.x) < tol);
  CHECK(relative_error(got.w_gate, ref.w_gate) < tol);
  CHECK(relative_error(got.w_up, ref.w_up) < tol);
  CHECK(relative_error(got.w_down, ref.w_down) < tol);
}

}  // namespace

// Tolerances (relative L2 against float64): bf16 operands with float32 accumulation land between
// 1e-3 and 1e-2, so the grouped path must be within 1e-2; the float32 loop and fused paths within 1e-5.
TEST_CASE("CUDA grouped GEMM (bf16), loop and fused paths match a float64 CPU loop", "[gpu][model][experts]") {
  REQUIRE(torch::cuda::is_available());
  const int64_t E = 8, D = 256, F = 512;
  // empty first and last experts, one row, groups that are and are not multiples of 8, a large one
  const std::vector<std::vector<int64_t>> cases = {{0, 3, 8, 13, 1, 0, 200, 0}, {0, 0, 0, 64, 0, 0, 0, 0},
                                                   {17, 9, 31, 8, 16, 5, 2, 40}};
  for (const auto& counts : cases) {
    const torch::Tensor counts_E = torch::tensor(counts, torch::kInt64);
    const int64_t N = counts_E.sum().item<int64_t>();
    torch::Generator gen = at::detail::createCPUGenerator(/*seed_in=*/static_cast<uint64_t>(N));
    const torch::Tensor x_ND = torch::randn({N, D}, gen);
    const torch::Tensor g_ND = torch::randn({N, D}, gen);
    torch::manual_seed(23);
    SwigluExperts experts(E, D, F, 0.05);

    experts->to(torch::kFloat64);
    const ExpertGrads ref = run_experts(experts, x_ND.to(torch::kFloat64), g_ND, counts_E, torch::kCPU, Path::kLoop);
    experts->to(torch::kCUDA, torch::kFloat32);
    INFO("tokens per expert " << counts_E);
    check_close(run_experts(experts, x_ND, g_ND, counts_E, torch::kCUDA, Path::kGrouped), ref, 1e-2);
    check_close(run_experts(experts, x_ND, g_ND, counts_E, torch::kCUDA, Path::kLoop), ref, 1e-5);
    check_close(run_experts(experts, x_ND, g_ND, counts_E, torch::kCUDA, Path::kFused), ref, 1e-5);
  }
}

// A Switch layer (top-1, fp32 routing) on CUDA against the same layer on the CPU. In fp32 the CUDA
// experts stay fp32 (1e-5); under bf16 autocast they run as the grouped GEMM, and the output and
// the gradients differ from the CPU by the experts' bf16 rounding only (1e-2), because the routing
// decisions agree.
TEST_CASE("a Switch MoE layer on CUDA matches the same layer on the CPU, fp32 and bf16", "[gpu][model][experts]") {
  REQUIRE(torch::cuda::is_available());
  Config config = dirmoe::testing::step_test_config("topk");
  config.model.d_model = 128, config.model.d_ff = 256;
  const int64_t T = 512;
  torch::Generator gen = at::detail::createCPUGenerator(/*seed_in=*/3);
  // NOTE: inputs and weights are bf16 numbers, so the router's logits come out of a bf16 matmul
  // (autocast) as they do in fp32, up to summation order, and no token changes its expert.
  auto bf16_exact = [](const torch::Tensor& t) { return t.to(torch::kBFloat16).to(torch::kFloat32); };
  const torch::Tensor x_TD = bf16_exact(torch::randn({T, config.model.d_model}, gen));
  const torch::Tensor g_TD = torch::randn({T, config.model.d_model}, gen);
  auto run = [&](const torch::Device& device, bool bf16) {
    torch::manual_seed(4);
    MoeLayer layer(config, 0, make_router(config));
    {
      torch::NoGradGuard no_grad;
      for (auto& p : layer->parameters()) p.copy_(bf16_exact(p));
    }
    layer->to(device);
    layer->train();
    const torch::Tensor x = x_TD.to(device).clone().requires_grad_(true);
    MoeLayerOutput out;
    {
      AutocastScope autocast(bf16);
      out = layer->forward(x);
    }
    (out.y_TD.to(torch::kFloat32) * g_TD.to(device)).sum().backward();
    std::vector<torch::Tensor> grads = {out.y_TD.cpu(), x.grad().cpu(), out.metrics.tokens_per_expert_E.cpu()};
    for (const auto& p : layer->parameters()) grads.push_back(p.grad().cpu());
    return grads;
  };
  const std::vector<torch::Tensor> cpu = run(torch::kCPU, false);
  for (const bool bf16 : {false, true}) {
    const std::vector<torch::Tensor> cuda = run(torch::kCUDA, bf16);
    REQUIRE(cpu.size() == cuda.size());
    CHECK(torch::equal(cuda[2], cpu[2]));  // the same dispatch
    for (size_t i = 0; i < cpu.size(); ++i) {
      if (i == 2) continue;
      INFO("tensor " << i << " (0: y, 1: dx, then the parameters' gradients), bf16 " << bf16);
      CHECK(relative_error(cuda[i], cpu[i]) < (bf16 ? 1e-2 : 1e-5));
    }
    if (bf16) CHECK(relative_error(cuda[0], cpu[0]) > 0.0);  // the grouped GEMM did run in bf16
  }
}
