// The Dirichlet KL node on CUDA (dirichlet.h's dirichlet_kl; dirichlet_kl_cuda.cu, one thread per row)
// against the CPU node and against autograd through the closed form as operators on the same device:
// values and both gradients, each gradient alone, 1-D arguments. The rows' formulas are checked on the
// CPU in tests/unit/test_router_dirichlet.cpp, the device's ψ and ψ′ in test_router_special_functions.cpp.
// NOTE: torch before Catch: c10 defines a glog-style CHECK macro.
#include <torch/torch.h>
#include <catch2/catch.hpp>

#include <functional>
#include <string>

#include "../support/router_test_util.h"
#include "dirmoe/router/dirichlet.h"
#include "dirmoe/router/element_kernels.h"

using dirmoe::testing::scaled_max_abs_diff;

namespace gpu_dirichlet_kl_test {

/// The closed form as operators (autograd differentiates it): the reference on either device.
torch::Tensor kl_formula(const torch::Tensor& q, const torch::Tensor& p) {
  const auto q0 = q.sum(-1), p0 = p.sum(-1);
  return torch::lgamma(q0) - torch::lgamma(q).sum(-1) - torch::lgamma(p0) + torch::lgamma(p).sum(-1) +
         ((q - p) * (torch::digamma(q) - torch::digamma(q0).unsqueeze(-1))).sum(-1);
}

/// Whether `value` came from the node (its backward), not from the operators' fallback.
bool from_node(const torch::Tensor& value) {
  return value.grad_fn() != nullptr && value.grad_fn()->name().find("DirichletKl") != std::string::npos;
}

struct KlRun {
  torch::Tensor value, g_q, g_p;  // CPU, float64; a gradient undefined where not wanted
};

/// Σ w·KL(q, p) and its gradients on `device` in `dtype` (from float64 q, p, w on the CPU).
KlRun run_kl(const std::function<torch::Tensor(const torch::Tensor&, const torch::Tensor&)>& kl,
             const torch::Device& device, torch::ScalarType dtype, const torch::Tensor& q, const torch::Tensor& p,
             const torch::Tensor& w, bool grad_q, bool grad_p, bool expect_node) {
  const auto on = torch::TensorOptions().dtype(dtype).device(device);
  const torch::Tensor qv = q.to(on).clone().requires_grad_(grad_q), pv = p.to(on).clone().requires_grad_(grad_p);
  const torch::Tensor value = kl(qv, pv);
  CHECK(value.device() == device);
  if (expect_node) CHECK(from_node(value));
  (value * w.to(on)).sum().backward();
  auto host = [](const torch::Tensor& t) { return t.defined() ? t.cpu().to(torch::kFloat64) : torch::Tensor(); };
  return {host(value.detach()), host(qv.grad()), host(pv.grad())};
}

void check_same(const KlRun& a, const KlRun& b, double value_tolerance, double grad_tolerance) {
  CHECK(torch::isfinite(a.value).all().item<bool>());
  CHECK(scaled_max_abs_diff(a.value, b.value) < value_tolerance);
  REQUIRE(a.g_q.defined() == b.g_q.defined());
  REQUIRE(a.g_p.defined() == b.g_p.defined());
  if (a.g_q.defined()) CHECK(scaled_max_abs_diff(a.g_q, b.g_q) < grad_tolerance);
  if (a.g_p.defined()) CHECK(scaled_max_abs_diff(a.g_p, b.g_p) < grad_tolerance);
}

}  // namespace gpu_dirichlet_kl_test

using gpu_dirichlet_kl_test::check_same;
using gpu_dirichlet_kl_test::kl_formula;
using gpu_dirichlet_kl_test::KlRun;
using gpu_dirichlet_kl_test::run_kl;

// Tolerances (max |difference| over max(1, max |reference|)): in float64 the value within 1e-10 (lnΓ of
// sums up to 320 cancel: the devices' lgamma differ in their last bits there), the gradients within 1e-8
// (LibTorch's CPU ψ′, which the CPU node and the CPU operators use, is accurate to about 5e-10 relative;
// the device's, special_functions.h, to 2e-16); in float32 both within 1e-3 (float32's lnΓ near 1,500).
TEST_CASE("the Dirichlet KL on CUDA: the node computes the CPU node's and the operators' values and gradients",
          "[gpu][router][dirmoe]") {
  REQUIRE(torch::cuda::is_available());
  // (test_gpu_routing_chain.cpp checks that gpu_check's build has the kernels)
  if (!dirmoe::testing::cuda_element_kernels_or_warn()) return;
  const torch::Device cuda(torch::kCUDA), cpu(torch::kCPU);
  torch::Generator gen = at::detail::createCPUGenerator(/*seed_in=*/26);
  // α over the router's range, 0.02 to 40; 3 × 211 rows of 8 (five thread blocks of 128, the last partial)
  auto draw_alpha = [&](std::vector<int64_t> shape) {
    return torch::exp(torch::rand(shape, gen, torch::TensorOptions().dtype(torch::kFloat64)) * 7.6 - 3.9);
  };
  const torch::Tensor q = draw_alpha({3, 211, 8}), p = draw_alpha({3, 211, 8});
  const torch::Tensor w = torch::randn({3, 211}, gen, torch::TensorOptions().dtype(torch::kFloat64));
  for (const auto dtype : {torch::kFloat64, torch::kFloat32}) {
    const double value_tolerance = dtype == torch::kFloat64 ? 1e-10 : 1e-3;
    const double grad_tolerance = dtype == torch::kFloat64 ? 1e-8 : 1e-3;
    for (const auto& [grad_q, grad_p] : {std::pair{true, true}, std::pair{true, false}, std::pair{false, true}}) {
      DYNAMIC_SECTION(dtype << ", gradient for q " << grad_q << ", for p " << grad_p) {
        const KlRun node = run_kl(dirmoe::dirichlet_kl, cuda, dtype, q, p, w, grad_q, grad_p, /*expect_node=*/true);
        const KlRun cpu_node = run_kl(dirmoe::dirichlet_kl, cpu, dtype, q, p, w, grad_q, grad_p, true);
        const KlRun operators = run_kl(kl_formula, cuda, dtype, q, p, w, grad_q, grad_p, false);
        {
          INFO("CUDA node against the CPU node");
          check_same(node, cpu_node, value_tolerance, grad_tolerance);
        }
        {
          INFO("CUDA node against the CUDA operators");
          check_same(node, operators, value_tolerance, grad_tolerance);
        }
      }
    }
  }
  SECTION("switched off (bench_suite --cuda-element-kernels false), the KL runs as the operators") {
    struct Restore {
      ~Restore() { dirmoe::set_cuda_element_kernels_enabled(true); }
    } restore;
    dirmoe::set_cuda_element_kernels_enabled(false);
    const KlRun off = run_kl(dirmoe::dirichlet_kl, cuda, torch::kFloat64, q, p, w, true, true, false);
    const torch::Tensor value = dirmoe::dirichlet_kl(q.to(cuda), p.to(cuda).requires_grad_(true));
    CHECK_FALSE(gpu_dirichlet_kl_test::from_node(value));
    dirmoe::set_cuda_element_kernels_enabled(true);
    const KlRun node = run_kl(dirmoe::dirichlet_kl, cuda, torch::kFloat64, q, p, w, true, true, true);
    check_same(node, off, 1e-10, 1e-8);
  }
  SECTION("1-D arguments: one scalar KL") {
    const torch::Tensor q1 = q[0][0], p1 = p[0][0], w1 = torch::ones({}, torch::kFloat64);
    const KlRun node = run_kl(dirmoe::dirichlet_kl, cuda, torch::kFloat64, q1, p1, w1, true, true, true);
    const KlRun operators = run_kl(kl_formula, cuda, torch::kFloat64, q1, p1, w1, true, true, false);
    check_same(node, operators, 1e-10, 1e-8);
  }
}
