// Dirichlet pieces of DirMoE checked against closed forms, Monte Carlo and an exact implicit
// derivative computed independently (tests/reference/gamma_implicit_grad_reference.py).
#include <cmath>
#include <functional>
#include <string>
#include <utility>
#include <vector>

#include <catch2/catch.hpp>
#include <torch/torch.h>

#include "../support/python_reference.h"
#include "dirmoe/router/dirichlet.h"
#include "dirmoe/router/dirichlet_calibration.h"
#include "dirmoe/router/element_kernels.h"

namespace {

struct MeanSe {
  double mean;
  double se;
};
MeanSe mean_se(const torch::Tensor& samples_N) {
  const double n = static_cast<double>(samples_N.numel());
  return {samples_N.mean().item<double>(), samples_N.std().item<double>() / std::sqrt(n)};
}

/// log Dir(θ | α) written out: lnΓ(α0) − Σ lnΓ(α_i) + Σ (α_i − 1)·log θ_i.
torch::Tensor log_dirichlet_density(const torch::Tensor& theta_NK, const torch::Tensor& alpha_K) {
  return std::lgamma(alpha_K.sum().item<double>()) - torch::lgamma(alpha_K).sum() +
         ((alpha_K - 1) * torch::log(theta_NK)).sum(1);
}

torch::Tensor dirichlet_draws(const torch::Tensor& alpha_K, int64_t n) {
  torch::NoGradGuard no_grad;
  return dirmoe::dirichlet_reparam(alpha_K.expand({n, alpha_K.size(0)}).contiguous());
}

}  // namespace

TEST_CASE("symmetric Dirichlet draws have E[Σθ²] = (λ+1)/(Kλ+1)", "[router][dirmoe]") {
  torch::manual_seed(21);
  const std::vector<std::pair<double, int64_t>> cases = {{0.05, 32}, {0.1, 8}, {0.5, 4}, {1.0, 8}, {3.0, 16}};
  for (const auto& [lambda, K] : cases) {
    const double predicted = (lambda + 1) / (K * lambda + 1);
    CHECK(dirmoe::expected_simpson(std::vector<double>(K, 1.0), lambda) == Approx(predicted).epsilon(1e-12));
    const auto theta = dirichlet_draws(torch::full({K}, lambda, torch::kFloat64), 20000);
    const auto s = mean_se(theta.square().sum(1));
    INFO("λ=" << lambda << " K=" << K << ": mean Σθ² " << s.mean << " ± " << s.se << " vs " << predicted);
    CHECK(std::abs(s.mean - predicted) < 3 * s.se);
    CHECK(torch::allclose(theta.sum(1), torch::ones({20000}, torch::kFloat64), 0, 1e-12));
  }
}

TEST_CASE("implicit reparameterisation gradient of E[θ_1] matches d(α_1/Σα)/dα", "[router][dirmoe]") {
  torch::manual_seed(22);
  for (const auto& values : std::vector<std::vector<double>>{{0.7, 1.5, 2.5, 0.3}, {0.1, 0.2, 5.0}, {12.0, 3.0}}) {
    const auto alpha_K = torch::tensor(values, torch::kFloat64);
    const int64_t K = alpha_K.size(0), N = 100000;
    // one copy of α per draw, so that its gradient is the per-draw gradient
    auto alpha_NK = alpha_K.expand({N, K}).clone().requires_grad_(true);
    const auto theta_NK = dirmoe::dirichlet_reparam(alpha_NK);
    theta_NK.select(1, 0).sum().backward();
    const auto grad_NK = alpha_NK.grad();
    const double a0 = alpha_K.sum().item<double>();
    for (int64_t j = 0; j < K; ++j) {
      const double analytic = ((j == 0 ? a0 : 0.0) - values[0]) / (a0 * a0);
      const auto s = mean_se(grad_NK.select(1, j));
      INFO("α=" << alpha_K << " j=" << j << ": " << s.mean << " ± " << s.se << " vs " << analytic);
      CHECK(std::abs(s.mean - analytic) < 4 * s.se + 1e-3 * std::abs(analytic));
      CHECK(s.se < 0.05 * std::abs(analytic));  // the check has power
    }
  }
}

TEST_CASE("Gamma implicit derivative equals the exact -(dF/dα)/(dF/dx), with pre-drawn draws", "[router][dirmoe]") {
  REQUIRE(dirmoe::testing::python_reference_available());
  torch::manual_seed(23);
  const auto alpha_N = torch::tensor({0.01, 0.1, 0.3, 0.7, 1.0, 1.5, 2.5, 4.0, 7.5, 9.0, 20.0, 40.0}, torch::kFloat64)
                           .repeat({3});
  const auto draws_N = at::_standard_gamma(alpha_N);
  auto alpha = alpha_N.clone().requires_grad_(true);
  const auto gamma = dirmoe::gamma_reparam(alpha, draws_N);
  CHECK(torch::equal(gamma.detach(), draws_N));  // the given draws are the sample
  gamma.sum().backward();
  const auto ref = dirmoe::testing::run_python_reference("gamma_implicit_grad_reference.py",
                                                         {{"alpha", alpha_N}, {"x", draws_N}});
  // at::_standard_gamma_grad is an approximation (series / saddle point / rational fit); its
  // relative error is below 1e-3 everywhere we use it
  const auto rel = ((alpha.grad() - ref.at("grad")).abs() / ref.at("grad").abs()).max().item<double>();
  INFO("max relative error " << rel);
  CHECK(rel < 1e-3);

  // the derivative evaluated once by the caller (DirMoE's two paths) gives the same gradient
  auto alpha_given = alpha_N.clone().requires_grad_(true);
  dirmoe::gamma_reparam(alpha_given, draws_N, dirmoe::gamma_sample_grad(alpha_N, draws_N)).sum().backward();
  CHECK(torch::equal(alpha_given.grad(), alpha.grad()));
  // float32 on the CPU: the kernel accumulates in double, so skipping the float64 round trip loses nothing
  const auto alpha32 = alpha_N.to(torch::kFloat32), draws32 = draws_N.to(torch::kFloat32).clamp_min(1e-30);
  CHECK(torch::equal(dirmoe::gamma_sample_grad(alpha32, draws32),
                     at::_standard_gamma_grad(alpha32.to(torch::kFloat64), draws32.to(torch::kFloat64)).to(torch::kFloat32)));

  // a layer's worth of values goes through the intra-op threads in blocks: the same values at 1 and 3
  // threads, and those of one call of LibTorch's kernel
  const auto alpha_big = (torch::rand({2048, 8}, torch::kFloat64) * 20.0 + 0.01).to(torch::kFloat32);
  const auto draws_big = at::_standard_gamma(alpha_big).clamp_min(1e-30);
  const int threads_before = at::get_num_threads();
  at::set_num_threads(1);
  const auto one_thread = dirmoe::gamma_sample_grad(alpha_big, draws_big);
  at::set_num_threads(3);
  const auto three_threads = dirmoe::gamma_sample_grad(alpha_big, draws_big);
  at::set_num_threads(threads_before);
  CHECK(torch::equal(one_thread, three_threads));
  CHECK(torch::equal(three_threads, at::_standard_gamma_grad(alpha_big, draws_big)));
}

TEST_CASE("Dirichlet KL closed form matches Monte Carlo and vanishes for equal arguments", "[router][dirmoe]") {
  torch::manual_seed(24);
  const auto q = torch::tensor({0.8, 2.0, 1.3, 0.5}, torch::kFloat64);
  const auto p = torch::tensor({1.5, 0.6, 1.0, 2.2}, torch::kFloat64);
  const double closed = dirmoe::dirichlet_kl(q, p).item<double>();
  const auto theta = dirichlet_draws(q, 200000);
  const auto s = mean_se(log_dirichlet_density(theta, q) - log_dirichlet_density(theta, p));
  INFO("closed " << closed << " MC " << s.mean << " ± " << s.se);
  CHECK(std::abs(closed - s.mean) < 4 * s.se);
  CHECK(closed > 10 * s.se);
  for (const auto& a : {q, p, torch::tensor({0.01, 0.02, 30.0}, torch::kFloat64)}) {
    CHECK(std::abs(dirmoe::dirichlet_kl(a, a).item<double>()) < 1e-12);
  }
  // batched: one KL per row
  const auto kl = dirmoe::dirichlet_kl(torch::stack({q, p}), torch::stack({p, q}));
  CHECK(kl.sizes() == torch::IntArrayRef{2});
  CHECK(kl[0].item<double>() == Approx(closed).epsilon(1e-12));
}

TEST_CASE("Dirichlet KL on the CPU: values and both gradients match autograd through the closed form and finite differences",
          "[router][dirmoe]") {
  torch::manual_seed(26);
  // the closed form as operators, written here (autograd differentiates it)
  auto kl_formula = [](const torch::Tensor& q, const torch::Tensor& p) {
    const auto q0 = q.sum(-1), p0 = p.sum(-1);
    return torch::lgamma(q0) - torch::lgamma(q).sum(-1) - torch::lgamma(p0) + torch::lgamma(p).sum(-1) +
           ((q - p) * (torch::digamma(q) - torch::digamma(q0).unsqueeze(-1))).sum(-1);
  };
  // the value came from the CPU node, not from the operators' fallback (which is the formula above)
  auto from_node = [](const torch::Tensor& value) {
    return value.grad_fn() != nullptr && value.grad_fn()->name().find("DirichletKl") != std::string::npos;
  };
  // α over the router's range, 0.02 to 40; 3 × 211 rows of 8 (three tasks of the loops at 3 threads)
  auto draw_alpha = [] { return torch::exp(torch::rand({3, 211, 8}, torch::kFloat64) * 7.6 - 3.9); };
  const auto q64 = draw_alpha(), p64 = draw_alpha();
  const auto w64 = torch::randn({3, 211}, torch::kFloat64);  // a loss Σ w·KL: a different gradient per row

  // value, ∂/∂α_q, ∂/∂α_p of Σ w·KL (a gradient only for the arguments asked)
  auto grads_of = [&](const std::function<torch::Tensor(const torch::Tensor&, const torch::Tensor&)>& kl,
                      const torch::Tensor& q, const torch::Tensor& p, bool grad_q = true, bool grad_p = true,
                      bool expect_node = false) {
    const auto qv = q.clone().requires_grad_(grad_q), pv = p.clone().requires_grad_(grad_p);
    const auto value = kl(qv, pv);
    if (expect_node) CHECK(from_node(value));
    (value * w64.to(value.scalar_type())).sum().backward();
    return std::vector<torch::Tensor>{value.detach(), qv.grad(), pv.grad()};
  };
  // element by element: |a − b| ≤ atol + rtol·|b|, b the float64 reference
  auto close = [](const torch::Tensor& a, const torch::Tensor& b, double rtol, double atol) {
    REQUIRE(a.defined());
    REQUIRE(a.sizes() == b.sizes());
    const auto excess = (a.to(torch::kFloat64) - b).abs() - (atol + rtol * b.abs());
    return excess.max().item<double>() <= 0.0;
  };
  const auto reference = grads_of(kl_formula, q64, p64);
  const auto node = grads_of(dirmoe::dirichlet_kl, q64, p64, true, true, /*expect_node=*/true);
  CHECK(node[0].sizes() == torch::IntArrayRef({3, 211}));
  for (int i = 0; i < 3; ++i) CHECK(close(node[i], reference[i], 1e-10, 1e-12));

  // central differences of one row's w·KL in a few coordinates of each argument, against the node's gradient
  {
    torch::NoGradGuard no_grad;
    for (const auto& [row, col] : std::vector<std::pair<int64_t, int64_t>>{{0, 0}, {17, 3}, {420, 7}, {632, 5}}) {
      auto row_loss = [&, row = row](const torch::Tensor& q, const torch::Tensor& p) {
        return (dirmoe::dirichlet_kl(q, p).view(-1)[row] * w64.view(-1)[row]).item<double>();
      };
      for (int arg = 0; arg < 2; ++arg) {
        auto q = q64.clone().view({-1, 8}), p = p64.clone().view({-1, 8});
        torch::Tensor& moved = arg == 0 ? q : p;
        const double x = moved[row][col].item<double>(), h = 1e-5 * x;
        moved[row][col] = x + h;
        const double up = row_loss(q, p);
        moved[row][col] = x - h;
        const double down = row_loss(q, p);
        const double analytic = node[1 + arg].view({-1, 8})[row][col].item<double>();
        INFO("argument " << arg << " row " << row << " column " << col);
        CHECK((up - down) / (2 * h) == Approx(analytic).epsilon(1e-6).margin(1e-9));
      }
    }
  }

  // float32: each value within float32's rounding of the float64 reference
  const auto node32 =
      grads_of(dirmoe::dirichlet_kl, q64.to(torch::kFloat32), p64.to(torch::kFloat32), true, true, /*expect_node=*/true);
  for (int i = 0; i < 3; ++i) CHECK(close(node32[i], reference[i], 1e-3, 1e-4));

  // non-contiguous arguments; a gradient wanted for one argument alone
  const auto q_strided = q64.transpose(0, 1).contiguous().transpose(0, 1);  // q64's values
  REQUIRE_FALSE(q_strided.is_contiguous());
  const auto q_only = grads_of(dirmoe::dirichlet_kl, q_strided, p64, true, false, /*expect_node=*/true);
  CHECK(close(q_only[1], reference[1], 1e-10, 1e-12));
  CHECK_FALSE(q_only[2].defined());
  const auto p_only = grads_of(dirmoe::dirichlet_kl, q64, p64, false, true, /*expect_node=*/true);
  CHECK_FALSE(p_only[1].defined());
  CHECK(close(p_only[2], reference[2], 1e-10, 1e-12));

  // one distribution (1-D arguments): a scalar KL and its gradients
  {
    const auto q1 = q64[1][5].clone().requires_grad_(true), p1 = p64[2][9].clone().requires_grad_(true);
    const auto kl1 = dirmoe::dirichlet_kl(q1, p1);
    CHECK(kl1.dim() == 0);
    CHECK(from_node(kl1));
    kl1.backward();
    const auto qr = q1.detach().clone().requires_grad_(true), pr = p1.detach().clone().requires_grad_(true);
    const auto kl1_reference = kl_formula(qr, pr);
    kl1_reference.backward();
    CHECK(kl1.item<double>() == Approx(kl1_reference.item<double>()).epsilon(1e-12));
    CHECK(close(q1.grad(), qr.grad(), 1e-10, 1e-12));
    CHECK(close(p1.grad(), pr.grad(), 1e-10, 1e-12));
  }

  // the same values at 1 and 3 threads
  const int threads_before = at::get_num_threads();
  at::set_num_threads(1);
  const auto one_thread = grads_of(dirmoe::dirichlet_kl, q64, p64);
  at::set_num_threads(3);
  const auto three_threads = grads_of(dirmoe::dirichlet_kl, q64, p64);
  at::set_num_threads(threads_before);
  for (int i = 0; i < 3; ++i) CHECK(torch::equal(one_thread[i], three_threads[i]));
}

TEST_CASE("Bernoulli KL matches Monte Carlo and stays finite when saturated", "[router][dirmoe]") {
  torch::manual_seed(25);
  const double pi = 0.2;
  const auto logits = torch::tensor({-2.0, 0.3, 1.7}, torch::kFloat64);
  const auto kl = dirmoe::bernoulli_kl(logits, pi);
  const int64_t N = 200000;
  for (int64_t i = 0; i < 3; ++i) {
    const double q = 1.0 / (1.0 + std::exp(-logits[i].item<double>()));
    const auto b = torch::bernoulli(torch::full({N}, q, torch::kFloat64));
    const auto log_ratio = b * std::log(q / pi) + (1 - b) * std::log((1 - q) / (1 - pi));
    const auto s = mean_se(log_ratio);
    INFO("logit " << logits[i].item<double>() << ": closed " << kl[i].item<double>() << " MC " << s.mean);
    CHECK(std::abs(kl[i].item<double>() - s.mean) < 4 * s.se);
  }
  const auto saturated = dirmoe::bernoulli_kl(torch::tensor({-100.0, 100.0}, torch::kFloat32), pi);
  CHECK(torch::isfinite(saturated).all().item<bool>());
  CHECK(saturated[0].item<double>() == Approx(-std::log(1 - pi)).epsilon(1e-5));
  CHECK(saturated[1].item<double>() == Approx(-std::log(pi)).epsilon(1e-5));
}

TEST_CASE("calibration formulas match Monte Carlo and invert each other", "[router][dirmoe]") {
  torch::manual_seed(26);
  const int64_t E = 8, k = 2;
  const double lambda = 0.5, a_hi = 1.985, a_lo = 0.05;
  const auto beta = dirmoe::subset_mass_beta(E, k, lambda, a_hi, a_lo);
  CHECK(beta.a == Approx(k * lambda * a_hi));
  CHECK(beta.b == Approx((E - k) * lambda * a_lo));
  std::vector<double> a(E, a_lo);
  for (int64_t i = 0; i < k; ++i) a[i] = a_hi;
  const auto alpha = lambda * torch::tensor(a, torch::kFloat64);
  const int64_t N = 200000;
  const auto theta = dirichlet_draws(alpha, N);
  const auto mass = theta.narrow(1, 0, k).sum(1);
  const auto m = mean_se(mass);
  INFO("subset mass " << m.mean << " ± " << m.se << " vs " << beta.mean());
  CHECK(std::abs(m.mean - beta.mean()) < 4 * m.se);
  const auto centred2 = (mass - m.mean).square();
  const auto v = mean_se(centred2);
  INFO("subset variance " << v.mean << " ± " << v.se << " vs " << beta.variance());
  CHECK(std::abs(v.mean - beta.variance()) < 4 * v.se);

  const auto simpson = mean_se(theta.square().sum(1));
  const double predicted = dirmoe::expected_simpson(a, lambda);
  INFO("Simpson " << simpson.mean << " ± " << simpson.se << " vs " << predicted);
  CHECK(std::abs(simpson.mean - predicted) < 4 * simpson.se);

  // inverses
  CHECK(dirmoe::expected_simpson(a, dirmoe::lambda_for_simpson(a, 0.6)) == Approx(0.6).epsilon(1e-12));
  CHECK(dirmoe::expected_simpson(std::vector<double>(E, 1.0), dirmoe::lambda_for_simpson_symmetric(E, 0.3)) ==
        Approx(0.3).epsilon(1e-12));
  CHECK(dirmoe::lambda_for_simpson_symmetric(E, 0.3) == Approx((1 - 0.3) / (0.3 * E - 1)));
  const double lam_v = dirmoe::lambda_for_subset_variance(E, k, a_hi, a_lo, 0.01);
  CHECK(dirmoe::subset_mass_beta(E, k, lam_v, a_hi, a_lo).variance() == Approx(0.01).epsilon(1e-12));
  const double ratio = dirmoe::active_mass_ratio(E, k, 0.9);
  CHECK(dirmoe::subset_mass_beta(E, k, 1.0, ratio * a_lo, a_lo).mean() == Approx(0.9).epsilon(1e-12));
  // the default prior (a_hi 1.985, a_lo 0.005) puts m ≈ 0.98 on the one active expert of 8
  CHECK(dirmoe::subset_mass_beta(8, 1, 0.5, 1.985, 0.005).mean() == Approx(0.98).epsilon(0.005));
  CHECK_THROWS(dirmoe::lambda_for_simpson_symmetric(E, 0.1));  // below 1/E
}

TEST_CASE("the CUDA element-kernel switch leaves the CPU's KL node and chain loops in place", "[router][dirmoe]") {
  // bench_suite --cuda-element-kernels false times CUDA's operators; the CPU runs its loops either way
  struct Restore {
    ~Restore() { dirmoe::set_cuda_element_kernels_enabled(true); }
  } restore;
  const torch::Device cpu(torch::kCPU), cuda(torch::kCUDA);
  for (const bool enabled : {true, false}) {
    INFO("enabled " << enabled);
    dirmoe::set_cuda_element_kernels_enabled(enabled);
    CHECK(dirmoe::cuda_element_kernels_enabled() == enabled);
    CHECK(dirmoe::element_passes_on(cpu));
    const auto q = (torch::rand({4, 8}, torch::kFloat64) + 0.1).requires_grad_(true);
    const auto kl = dirmoe::dirichlet_kl(q, q.detach() + 0.5);
    CHECK(kl.grad_fn()->name().find("DirichletKl") != std::string::npos);
    if (!enabled) {  // off, CUDA has neither, whatever the build
      CHECK_FALSE(dirmoe::element_passes_on(cuda));
    }
  }
}
