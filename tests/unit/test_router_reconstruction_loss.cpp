// DirMoE's reconstruction term in its expanded form (reconstruction_loss.h) against the direct
// definition mean_t ‖x_t − (W r_t + b)‖², value and gradients: to rounding in float64, and within
// float32's cancellation bound at the magnitudes a router sees (x ~ unit-variance features, r a
// probability vector, the decoder at its initial scale and after it has fitted part of x).
#include <catch2/catch.hpp>
#include <torch/torch.h>

#include "dirmoe/router/reconstruction_loss.h"

namespace {

struct Case {
  torch::Tensor x_TD, r_TE, w_DE, b_D;
};

Case make_case(torch::ScalarType dtype, double weight_scale, uint64_t seed) {
  torch::Generator gen = at::detail::createCPUGenerator(seed);
  const int64_t T = 96, D = 48, E = 8;
  const auto opts = torch::TensorOptions().dtype(torch::kFloat64);
  Case c;
  c.x_TD = torch::randn({T, D}, gen, opts).to(dtype);
  c.r_TE = torch::softmax(3.0 * torch::randn({T, E}, gen, opts), 1).to(dtype).requires_grad_(true);
  c.w_DE = (weight_scale * torch::randn({D, E}, gen, opts)).to(dtype).requires_grad_(true);
  c.b_D = (0.1 * torch::randn({D}, gen, opts)).to(dtype).requires_grad_(true);
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
  for (const double weight_scale : {0.02, 1.0}) {  // the initial decoder; one whose output is as large as x
    DYNAMIC_SECTION("decoder weight scale " << weight_scale) {
      const auto mse = [](const Case& c) { return dirmoe::reconstruction_mse(c.x_TD, c.r_TE, c.w_DE, c.b_D); };
      // float64: only the order of the sums differs
      const Case c64 = make_case(torch::kFloat64, weight_scale, 3);
      const ValueAndGrads a = evaluate(c64, mse), b = evaluate(c64, direct_mse);
      CHECK(std::abs(a.value / b.value - 1.0) < 1e-12);
      CHECK(rel(a.d_r, b.d_r) < 1e-12);
      CHECK(rel(a.d_w, b.d_w) < 1e-12);
      CHECK(rel(a.d_b, b.d_b) < 1e-12);
      // float32 against the float64 definition: the expansion's cancellation stays at float32's level
      const Case c32 = make_case(torch::kFloat32, weight_scale, 3);
      const ValueAndGrads f = evaluate(c32, mse);
      CHECK(std::abs(f.value / b.value - 1.0) < 1e-5);
      CHECK(rel(f.d_r, b.d_r) < 1e-5);
      CHECK(rel(f.d_w, b.d_w) < 1e-5);
      CHECK(rel(f.d_b, b.d_b) < 1e-5);
    }
  }
}

TEST_CASE("reconstruction_mse refuses an input that requires a gradient, and mismatched shapes", "[router][dirmoe]") {
  const Case c = make_case(torch::kFloat32, 0.02, 4);
  CHECK_THROWS(dirmoe::reconstruction_mse(c.x_TD.clone().requires_grad_(true), c.r_TE, c.w_DE, c.b_D));
  CHECK_THROWS(dirmoe::reconstruction_mse(c.x_TD, c.r_TE.narrow(0, 0, 10), c.w_DE, c.b_D));
  CHECK_THROWS(dirmoe::reconstruction_mse(c.x_TD, c.r_TE, c.w_DE.t(), c.b_D));
}
