// DirMoE's reconstruction term in its expanded form (reconstruction_loss.h) against the direct
// definition mean_t ‖x_t − (W r_t + b)‖², value and gradients: to rounding in float64, and in float32
// within bounds that follow the expansion's cancellation error, ≈ ε₃₂·‖x_t‖²/‖residual_t‖², in four
// regimes: a random decoder (at its initial scale and as large as x: no cancellation), a decoder that
// has fitted x up to a residual of 0.3 per feature, a bias that has learned a large common offset of x,
// and a decoder that reproduces x up to 0.01 per feature (the worst, out of the router's reach: E
// routing weights cannot span D features).
#include <utility>
#include <vector>

#include <catch2/catch.hpp>
#include <torch/torch.h>

#include "dirmoe/router/reconstruction_loss.h"

namespace {

struct Case {
  torch::Tensor x_TD, r_TE, w_DE, b_D;
};

/// The regimes of the header; x is built in float64 and rounded once to `dtype`.
enum class Regime { random_small, random_large, fitted_residual_03, learned_offset, near_fit_001 };

Case make_case(torch::ScalarType dtype, Regime regime, uint64_t seed) {
  torch::Generator gen = at::detail::createCPUGenerator(seed);
  const int64_t T = 256, D = 128, E = 8;
  const auto opts = torch::TensorOptions().dtype(torch::kFloat64);
  const torch::Tensor r = torch::softmax(3.0 * torch::randn({T, E}, gen, opts), 1);
  torch::Tensor w = 0.02 * torch::randn({D, E}, gen, opts);
  torch::Tensor b = 0.1 * torch::randn({D}, gen, opts);
  torch::Tensor x = torch::randn({T, D}, gen, opts);
  switch (regime) {
    case Regime::random_small: break;
    case Regime::random_large: w = torch::randn({D, E}, gen, opts); break;
    case Regime::fitted_residual_03:
      w = torch::randn({D, E}, gen, opts);
      x = torch::mm(r, w.t()) + b + 0.3 * torch::randn({T, D}, gen, opts);
      break;
    case Regime::learned_offset:
      b = b + 30.0;
      x = x + 30.0;
      break;
    case Regime::near_fit_001:
      w = torch::randn({D, E}, gen, opts);
      x = torch::mm(r, w.t()) + b + 0.01 * torch::randn({T, D}, gen, opts);
      break;
  }
  Case c;
  c.x_TD = x.to(dtype);
  c.r_TE = r.to(dtype).requires_grad_(true);
  c.w_DE = w.to(dtype).requires_grad_(true);
  c.b_D = b.to(dtype).requires_grad_(true);
  return c;
}

/// The definition: the decoder output written out.
torch::Tensor direct_mse(const Case& c) {
  return (c.x_TD - (torch::mm(c.r_TE, c.w_DE.t()) + c.b_D)).square().sum(1).mean();
}

struct ValueAndGrads {
  double value;
  torch::Tensor d_r, d_w, d_b;
};

template <typename Fn>
ValueAndGrads evaluate(const Case& c, Fn loss_fn) {
  for (const auto* t : {&c.r_TE, &c.w_DE, &c.b_D}) {
    if (t->grad().defined()) const_cast<torch::Tensor&>(*t).mutable_grad() = torch::Tensor();
  }
  torch::Tensor loss = loss_fn(c);
  loss.backward();
  return {loss.item<double>(), c.r_TE.grad().clone(), c.w_DE.grad().clone(), c.b_D.grad().clone()};
}

double rel(const torch::Tensor& a, const torch::Tensor& b) {
  return ((a.to(torch::kFloat64) - b.to(torch::kFloat64)).norm() / b.to(torch::kFloat64).norm()).item<double>();
}

}  // namespace

TEST_CASE("reconstruction_mse equals the direct decoder error, value and gradients", "[router][dirmoe]") {
  // (regime, float32 bound): measured, the largest error of each regime is 9–50× below its bound
  // (2e-7, 2e-7, 3e-6, 6e-5, 4e-4)
  const std::vector<std::pair<Regime, double>> regimes = {{Regime::random_small, 1e-5},
                                                          {Regime::random_large, 1e-5},
                                                          {Regime::fitted_residual_03, 1e-4},
                                                          {Regime::learned_offset, 5e-4},
                                                          {Regime::near_fit_001, 5e-3}};
  const auto mse = [](const Case& c) { return dirmoe::reconstruction_mse(c.x_TD, c.r_TE, c.w_DE, c.b_D); };
  for (const auto& [regime, bound] : regimes) {
    DYNAMIC_SECTION("regime " << static_cast<int>(regime)) {
      // float64: only the order of the sums differs (at most 3e-13 measured, the near fit)
      const Case c64 = make_case(torch::kFloat64, regime, 3);
      const ValueAndGrads a = evaluate(c64, mse), b = evaluate(c64, direct_mse);
      CHECK(std::abs(a.value / b.value - 1.0) < 1e-11);
      CHECK(rel(a.d_r, b.d_r) < 1e-11);
      CHECK(rel(a.d_w, b.d_w) < 1e-11);
      CHECK(rel(a.d_b, b.d_b) < 1e-11);
      // float32 against the float64 definition
      const Case c32 = make_case(torch::kFloat32, regime, 3);
      const ValueAndGrads f = evaluate(c32, mse);
      CHECK(std::abs(f.value / b.value - 1.0) < bound);
      CHECK(rel(f.d_r, b.d_r) < bound);
      CHECK(rel(f.d_w, b.d_w) < bound);
      CHECK(rel(f.d_b, b.d_b) < bound);
    }
  }
}

TEST_CASE("reconstruction_mse refuses an input that requires a gradient, and mismatched shapes", "[router][dirmoe]") {
  const Case c = make_case(torch::kFloat32, Regime::random_small, 4);
  CHECK_THROWS(dirmoe::reconstruction_mse(c.x_TD.clone().requires_grad_(true), c.r_TE, c.w_DE, c.b_D));
  CHECK_THROWS(dirmoe::reconstruction_mse(c.x_TD, c.r_TE.narrow(0, 0, 10), c.w_DE, c.b_D));
  CHECK_THROWS(dirmoe::reconstruction_mse(c.x_TD, c.r_TE, c.w_DE.t(), c.b_D));
}
