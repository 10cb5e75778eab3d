#pragma once
// The digamma and trigamma functions ψ(x) = d lnΓ(x)/dx and ψ′(x), callable from the host and from
// CUDA device code: the Dirichlet KL's CUDA kernels (dirichlet_kl_cuda.cu) evaluate them, where
// LibTorch's own device versions exist only as run-time-compiled source strings. The CPU node keeps
// LibTorch's CPU functions (ATen/native/Math.h), so its values are torch's to the last bit. In float64
// these agree with mpmath to about 1.5e-15 (ψ, against max(1, |ψ|)) and 7e-16 relative (ψ′) from 1e-4
// to 1e6; LibTorch's CPU ψ′ is about 5e-10 from both (its series stops earlier)
// (tests/unit/test_router_special_functions.cpp).
//
// Both shift x up by the recurrences ψ(x) = ψ(x + 1) − 1/x and ψ′(x) = ψ′(x + 1) + 1/x² until x ≥ 10,
// then sum their asymptotic series in 1/x² (Abramowitz & Stegun 6.3.18 and 6.4.12, Bernoulli numbers
// B_2 … B_14); at x = 10 the first omitted term is 2e-17 of ψ and 7e-16 of ψ′. Negative arguments use
// the reflections ψ(1 − x) − ψ(x) = π·cot(πx) and ψ′(1 − x) + ψ′(x) = π²/sin²(πx), with πx reduced by
// the nearest integer (exactly) so that arguments just below 0 keep their precision. At the poles
// (0, −1, −2, …) ψ is NaN (±∞ at ±0, as C++ and SciPy define it) and ψ′ is +∞. Float arguments are
// evaluated in double and rounded once (slow on GPUs with little FP64 throughput; the Dirichlet KL
// evaluates a few per router weight).
#include <cmath>

#include "dirmoe/core/philox_rounds.h"  // DIRMOE_HOST_DEVICE

namespace dirmoe::special {

constexpr double kPi = 3.14159265358979323846;
/// where the series take over from the recurrences
constexpr double kSeriesFrom = 10.0;

/// ψ(x) for x ≥ kSeriesFrom: ln x − 1/(2x) − Σ_{n=1..7} B_{2n}/(2n·x^{2n})
DIRMOE_HOST_DEVICE inline double digamma_series(double x) {
  const double z = 1.0 / (x * x);
  const double tail =
      z * (1.0 / 12 - z * (1.0 / 120 - z * (1.0 / 252 - z * (1.0 / 240 - z * (1.0 / 132 - z * (691.0 / 32760 - z / 12))))));
  return log(x) - 0.5 / x - tail;
}

/// ψ′(x) for x ≥ kSeriesFrom: 1/x + 1/(2x²) + Σ_{n=1..7} B_{2n}/x^{2n+1}
DIRMOE_HOST_DEVICE inline double trigamma_series(double x) {
  const double z = 1.0 / (x * x);
  const double tail =
      z * (1.0 / 6 - z * (1.0 / 30 - z * (1.0 / 42 - z * (1.0 / 30 - z * (5.0 / 66 - z * (691.0 / 2730 - z * 7.0 / 6))))));
  return 1.0 / x + 0.5 * z + tail / x;
}

DIRMOE_HOST_DEVICE inline double digamma(double x) {
  if (x == 0) return copysign(INFINITY, -x);  // ψ(±0) = ∓∞
  double result = 0.0;
  if (x < 0) {
    if (x == floor(x)) return NAN;
    // ψ(x) = ψ(1 − x) − π·cot(πx); cot has period 1: r = x − round(x) is exact and |r| ≤ 1/2
    result = -kPi / tan(kPi * (x - nearbyint(x)));
    x = 1.0 - x;
  }
  while (x < kSeriesFrom) {
    result -= 1.0 / x;
    x += 1.0;
  }
  return result + digamma_series(x);
}

DIRMOE_HOST_DEVICE inline double trigamma(double x) {
  double reflected = 0.0, sign = 1.0;
  if (x <= 0) {
    if (x == floor(x)) return INFINITY;
    // ψ′(x) = π²/sin²(πx) − ψ′(1 − x); sin² has period 1 (r = x − round(x), exact)
    const double s = sin(kPi * (x - nearbyint(x)));
    reflected = kPi * kPi / (s * s);
    sign = -1.0;
    x = 1.0 - x;
  }
  double result = 0.0;
  while (x < kSeriesFrom) {
    result += 1.0 / (x * x);
    x += 1.0;
  }
  return reflected + sign * (result + trigamma_series(x));
}

DIRMOE_HOST_DEVICE inline float digamma(float x) { return static_cast<float>(digamma(static_cast<double>(x))); }
DIRMOE_HOST_DEVICE inline float trigamma(float x) { return static_cast<float>(trigamma(static_cast<double>(x))); }

}  // namespace dirmoe::special
