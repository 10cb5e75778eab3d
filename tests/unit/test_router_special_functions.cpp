// ψ and ψ′ of special_functions.h (the Dirichlet KL's CUDA kernels evaluate them) on the host, against
// closed forms and against LibTorch's CPU digamma and polygamma(1, ·), an independent implementation.
// NOTE: torch before Catch: c10 defines a glog-style CHECK macro.
#include <torch/torch.h>
#include <catch2/catch.hpp>

#include <cmath>
#include <vector>

#include "dirmoe/router/special_functions.h"

namespace special_functions_test {

constexpr double kEulerGamma = 0.57721566490153286061;
constexpr double kPi = 3.14159265358979323846;

/// |a − b| ≤ tolerance·max(1, |b|): relative where |b| ≥ 1, absolute near ψ's root (x ≈ 1.4616).
bool close(double a, double b, double tolerance) { return std::abs(a - b) <= tolerance * std::max(1.0, std::abs(b)); }

}  // namespace special_functions_test

using special_functions_test::close;

TEST_CASE("digamma and trigamma equal their closed forms", "[router][dirmoe]") {
  using dirmoe::special::digamma;
  using dirmoe::special::trigamma;
  using special_functions_test::kEulerGamma;
  using special_functions_test::kPi;
  // ψ(1) = −γ, ψ(1/2) = −γ − 2 ln 2, ψ(n + 1) = −γ + H_n; ψ′(1) = π²/6, ψ′(1/2) = π²/2, ψ′(n + 1) = π²/6 − Σ_{k≤n} 1/k²
  CHECK(close(digamma(1.0), -kEulerGamma, 1e-15));
  CHECK(close(digamma(0.5), -kEulerGamma - 2.0 * std::log(2.0), 1e-15));
  CHECK(close(trigamma(1.0), kPi * kPi / 6.0, 1e-15));
  CHECK(close(trigamma(0.5), kPi * kPi / 2.0, 1e-15));
  double harmonic = 0.0, inverse_squares = 0.0;
  for (int n = 1; n <= 40; ++n) {
    harmonic += 1.0 / n;
    inverse_squares += 1.0 / (static_cast<double>(n) * n);
    INFO("n = " << n);
    CHECK(close(digamma(n + 1.0), -kEulerGamma + harmonic, 2e-15));
    CHECK(close(trigamma(n + 1.0), kPi * kPi / 6.0 - inverse_squares, 2e-14));
  }
  // the series' side, where the recurrences leave x ≥ 10: mpmath's values (30 digits, rounded), to a
  // purely relative 4e-15; dropping the series' last term (B_14) or changing one coefficient fails these
  const double mpmath_x[] = {3.7, 10.0, 10.5, 12.0, 25.0};
  const double mpmath_digamma[] = {1.1671535393615114409, 2.2517525890667211076, 2.3030010342976863753,
                                   2.4426616799758120167, 3.1987425128519740085};
  const double mpmath_trigamma[] = {0.31003785767003830216, 0.10516633568168574612, 0.099916956059126733204,
                                    0.08690187287176839075, 0.040810663257225579187};
  for (int i = 0; i < 5; ++i) {
    INFO("x = " << mpmath_x[i]);
    CHECK(std::abs(digamma(mpmath_x[i]) / mpmath_digamma[i] - 1.0) < 4e-15);
    CHECK(std::abs(trigamma(mpmath_x[i]) / mpmath_trigamma[i] - 1.0) < 4e-15);
  }
  // just below 0, where the reflection's cot(πx) and sin(πx) need x reduced exactly:
  // ψ(−ε) = 1/ε + ψ(1) + O(ε) = 1/ε − γ + O(ε), ψ′(−ε) = 1/ε² + π²/6 + O(ε) (Laurent series at the pole)
  for (const double eps : {1e-9, 1e-12}) {
    INFO("x = " << -eps);
    CHECK(std::abs(digamma(-eps) / (1.0 / eps - kEulerGamma) - 1.0) < 1e-15);
    CHECK(std::abs(trigamma(-eps) / (1.0 / (eps * eps) + kPi * kPi / 6.0) - 1.0) < 1e-15);
  }
  // ψ(1 − x) − ψ(x) = π·cot(πx) and ψ′(1 − x) + ψ′(x) = π²/sin²(πx), at negative x
  for (const double x : {-0.25, -1.5, -2.3, -10.7}) {
    INFO("x = " << x);
    CHECK(close(digamma(1.0 - x) - digamma(x), kPi / std::tan(kPi * x), 1e-12));
    CHECK(close(trigamma(1.0 - x) + trigamma(x), kPi * kPi / std::pow(std::sin(kPi * x), 2), 1e-12));
  }
  // the poles: ψ(±0) = ∓∞, NaN at the negative integers; ψ′ = +∞ at every non-positive integer
  CHECK(digamma(0.0) == -INFINITY);
  CHECK(digamma(-0.0) == INFINITY);
  CHECK(std::isnan(digamma(-2.0)));
  CHECK(trigamma(0.0) == INFINITY);
  CHECK(trigamma(-3.0) == INFINITY);
}

TEST_CASE("digamma and trigamma equal LibTorch's from 1e-4 to 1e6 and at negative arguments", "[router][dirmoe]") {
  torch::manual_seed(3);
  // log-uniform over the range, the recurrences' steps (x < 10) and the series' side both covered,
  // and negative non-integers
  const torch::Tensor positive = torch::exp(torch::rand({4000}, torch::kFloat64) * 23.0 - 9.2);
  const torch::Tensor negative = -torch::rand({500}, torch::kFloat64) * 30.0;
  const torch::Tensor x = torch::cat({positive, negative, torch::tensor({10.0, 9.999999, 10.000001, 0.1, 1.4616321449683623})});
  const torch::Tensor psi = torch::digamma(x), psi1 = torch::polygamma(1, x);
  const torch::Tensor x32 = x.to(torch::kFloat32);
  const torch::Tensor psi32 = torch::digamma(x32), psi1_32 = torch::polygamma(1, x32);
  int wrong64 = 0, wrong32 = 0;
  for (int64_t i = 0; i < x.numel(); ++i) {
    const double xi = x[i].item<double>();
    const float xf = x32[i].item<float>();
    // float64: ψ to 1e-13 (near the negative poles LibTorch's reflection loses a few more bits: at
    // x = −8.9964 it is 2.7e-14 from mpmath, ours 3e-16); ψ′ to LibTorch's own accuracy, about 5e-10
    // relative (its series stops at x^-9; against mpmath, ours is within 2e-16 here, theirs 4.9e-10)
    wrong64 += !close(dirmoe::special::digamma(xi), psi[i].item<double>(), 1e-13);
    wrong64 += !close(dirmoe::special::trigamma(xi), psi1[i].item<double>(), 1e-9);
    // float32 (positive arguments, the Dirichlet KL's): ours is the float64 value rounded once;
    // LibTorch's float kernels compute in float
    if (xf <= 0) continue;
    wrong32 += !close(dirmoe::special::digamma(xf), psi32[i].item<float>(), 2e-5);
    wrong32 += !close(dirmoe::special::trigamma(xf), psi1_32[i].item<float>(), 2e-5);
  }
  CHECK(wrong64 == 0);
  CHECK(wrong32 == 0);
}
