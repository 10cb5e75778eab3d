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

TEST_CASE("CUDA grouped GEMM (bf16) matches the CPU loop", "[model][experts][gpu]") {
  REQUIRE(torch::cuda::is_available());
  torch::manual_seed(23);
  SwigluExperts experts(5, 64, 128, 0.1);
  const torch::Tensor x_ND = torch::randn({25, 64});
  const torch::Tensor g_ND = torch::randn({25, 64});
  const torch::Tensor x_cpu = x_ND.clone().requires_grad_(true);
  const torch::Tensor y_cpu = experts->forward_loop(x_cpu, test_counts());
  (y_cpu * g_ND).sum().backward();
  const torch::Tensor gw_cpu = experts->w_gate.grad().clone();

  experts->zero_grad();
  experts->to(torch::kCUDA);
  const torch::Tensor x_gpu = x_ND.to(torch::kCUDA).requires_grad_(true);
  const torch::Tensor y_gpu = experts->forward(x_gpu, test_counts().to(torch::kCUDA));  // grouped on CUDA
  (y_gpu * g_ND.to(torch::kCUDA)).sum().backward();
  const torch::Tensor gw_gpu = experts->w_gate.grad().cpu();
  CHECK((y_gpu.cpu() - y_cpu).abs().max().item<double>() < 0.02 * y_cpu.abs().max().item<double>());
  CHECK((x_gpu.grad().cpu() - x_cpu.grad()).abs().max().item<double>() < 0.02 * x_cpu.grad().abs().max().item<double>());
  CHECK((gw_gpu - gw_cpu).abs().max().item<double>() < 0.02 * gw_cpu.abs().max().item<double>());
}
