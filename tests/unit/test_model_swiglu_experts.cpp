// Stacked SwiGLU experts: the loop path, and the grouped-GEMM path against it.
#include <catch2/catch.hpp>
#include <torch/torch.h>

#include "dirmoe/model/swiglu_experts.h"

using namespace dirmoe;

namespace {
// Counts with an empty expert, groups that are and are not multiples of 8.
const torch::Tensor& test_counts() {
  static const torch::Tensor counts = torch::tensor({3, 0, 8, 13, 1}, torch::kInt64);
  return counts;
}
}  // namespace

TEST_CASE("expert loop computes each row with its own expert", "[model][experts]") {
  torch::manual_seed(21);
  SwigluExperts experts(5, 16, 24, 0.3);
  experts->to(torch::kFloat64);
  const torch::Tensor x_ND = torch::randn({25, 16}, torch::kFloat64);
  const torch::Tensor y_ND = experts->forward_loop(x_ND, test_counts());
  const std::vector<int64_t> counts = {3, 0, 8, 13, 1};
  int64_t row = 0;
  for (int64_t e = 0; e < 5; ++e) {
    for (int64_t i = 0; i < counts[e]; ++i, ++row) {
      const torch::Tensor x = x_ND[row];
      const torch::Tensor g = torch::mv(experts->w_gate[e].t(), x);
      const torch::Tensor u = torch::mv(experts->w_up[e].t(), x);
      const torch::Tensor expected = torch::mv(experts->w_down[e].t(), g * torch::sigmoid(g) * u);
      CHECK(torch::allclose(y_ND[row], expected, 1e-12, 1e-12));
    }
  }
  CHECK(experts->forward_loop(torch::zeros({0, 16}, torch::kFloat64), torch::zeros({5}, torch::kInt64)).size(0) == 0);
}

// The padded grouped path also runs on CPU (ATen has a CPU _grouped_mm), which checks the padding
// and offset bookkeeping without a GPU; bf16 accuracy.
TEST_CASE("grouped-GEMM path matches the loop (CPU, bf16)", "[model][experts]") {
  torch::manual_seed(22);
  SwigluExperts experts(5, 16, 32, 0.3);
  const torch::Tensor x_ND = torch::randn({25, 16}).requires_grad_(true);
  const torch::Tensor g_ND = torch::randn({25, 16});
  const torch::Tensor y_loop = experts->forward_loop(x_ND, test_counts());
  (y_loop * g_ND).sum().backward();
  const torch::Tensor gx_loop = x_ND.grad().clone();
  const torch::Tensor gw_loop = experts->w_down.grad().clone();
  x_ND.mutable_grad().zero_();
  experts->w_down.mutable_grad().zero_();
  const torch::Tensor y_grouped = experts->forward_grouped(x_ND, test_counts());
  (y_grouped * g_ND).sum().backward();
  const double scale = y_loop.abs().max().item<double>();
  CHECK((y_grouped - y_loop).abs().max().item<double>() < 0.02 * scale);
  CHECK((x_ND.grad() - gx_loop).abs().max().item<double>() < 0.02 * gx_loop.abs().max().item<double>());
  CHECK((experts->w_down.grad() - gw_loop).abs().max().item<double>() < 0.02 * gw_loop.abs().max().item<double>());
}

// The CUDA paths (grouped GEMM and loop) against a float64 reference: tests/gpu/test_gpu_experts.cpp.

// The fused CPU path computes the loop's function: same values and the same gradients of x and of
// every weight (float64, so any difference is a bookkeeping error, not rounding), with empty
// experts first, inside and last, and without a gradient for x.
TEST_CASE("fused expert path matches the loop, values and every gradient", "[model][experts]") {
  // one thread (a sequential pass over the blocks) and three (the blocks shared among threads)
  const int threads = GENERATE(1, 3);
  const int threads_before = torch::get_num_threads();
  torch::set_num_threads(threads);
  torch::manual_seed(24);
  SwigluExperts experts(6, 12, 20, 0.4);
  experts->to(torch::kFloat64);
  const torch::Tensor counts_E = torch::tensor({0, 3, 0, 9, 5, 0}, torch::kInt64);
  const torch::Tensor g_ND = torch::randn({17, 12}, torch::kFloat64);
  for (const bool x_grad : {true, false}) {
    const torch::Tensor x_ND = torch::randn({17, 12}, torch::kFloat64).requires_grad_(x_grad);
    auto run = [&](bool fused) {
      experts->zero_grad();
      if (x_grad) x_ND.mutable_grad() = torch::Tensor();
      const torch::Tensor y =
          fused ? experts->forward_fused(x_ND, counts_E) : experts->forward_loop(x_ND, counts_E);
      (y * g_ND).sum().backward();
      return std::vector<torch::Tensor>{y.detach(), x_grad ? x_ND.grad() : torch::zeros({1}),
                                        experts->w_gate.grad(), experts->w_up.grad(), experts->w_down.grad()};
    };
    const auto loop = run(false), fused = run(true);
    for (size_t i = 0; i < loop.size(); ++i) {
      INFO("tensor " << i << " (y, dx, dW_gate, dW_up, dW_down), x requires grad: " << x_grad);
      REQUIRE(fused[i].sizes() == loop[i].sizes());
      CHECK(torch::allclose(fused[i], loop[i], 1e-12, 1e-12));
    }
    // the empty experts' weight gradients are 0, not left unwritten
    CHECK(fused[2][0].abs().max().item<double>() == 0.0);
    CHECK(fused[4][5].abs().max().item<double>() == 0.0);
  }
  // CPU forward() takes the fused path; set_fused(false) the loop (same values either way)
  const torch::Tensor x_ND = torch::randn({17, 12}, torch::kFloat64);
  const torch::Tensor y_default = experts->forward(x_ND, counts_E);
  experts->set_fused(false);
  CHECK(torch::allclose(experts->forward(x_ND, counts_E), y_default, 1e-12, 1e-12));
  CHECK(experts->forward_fused(torch::zeros({0, 12}, torch::kFloat64), torch::zeros({6}, torch::kInt64)).size(0) == 0);
  torch::set_num_threads(threads_before);
}
