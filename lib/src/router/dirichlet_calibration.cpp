#include "dirmoe/router/dirichlet_calibration.h"

#include <fmt/format.h>

#include "dirmoe/core/error.h"

namespace dirmoe {
namespace {
void require(bool ok, const std::string& message) {
  if (!ok) throw Error(message);
}
std::pair<double, double> sum_and_square_sum(const std::vector<double>& a) {
  double b = 0.0, s2 = 0.0;
  for (double v : a) {
    require(v > 0.0, "Dirichlet calibration: every concentration must be > 0");
    b += v;
    s2 += v * v;
  }
  require(!a.empty(), "Dirichlet calibration: need at least one concentration");
  return {b, s2};
}
}  // namespace

BetaParams subset_mass_beta(int64_t n_experts, int64_t k, double lambda, double a_hi, double a_lo) {
  require(k >= 1 && k < n_experts, fmt::format("subset mass: need 1 <= k < E (k={}, E={})", k, n_experts));
  require(lambda > 0 && a_hi > 0 && a_lo > 0, "subset mass: lambda, a_hi and a_lo must be > 0");
  return {static_cast<double>(k) * lambda * a_hi, static_cast<double>(n_experts - k) * lambda * a_lo};
}

double active_mass_ratio(int64_t n_experts, int64_t k, double target_mass) {
  require(k >= 1 && k < n_experts, fmt::format("active mass: need 1 <= k < E (k={}, E={})", k, n_experts));
  require(target_mass > 0 && target_mass < 1, "active mass: target must be in (0, 1)");
  return target_mass / (1.0 - target_mass) * static_cast<double>(n_experts - k) / static_cast<double>(k);
}

double expected_simpson(const std::vector<double>& a, double lambda) {
  require(lambda > 0, "expected Simpson: lambda must be > 0");
  const auto [b, s2] = sum_and_square_sum(a);
  return (lambda * s2 / b + 1.0) / (lambda * b + 1.0);
}

double lambda_for_simpson(const std::vector<double>& a, double target_h) {
  const auto [b, s2] = sum_and_square_sum(a);
  require(target_h > s2 / (b * b) && target_h < 1.0,
          fmt::format("Simpson target {} must lie in ({}, 1)", target_h, s2 / (b * b)));
  return (1.0 - target_h) / (target_h * b - s2 / b);
}

double lambda_for_simpson_symmetric(int64_t n_experts, double target_h) {
  require(n_experts >= 2, "Simpson: need E >= 2");
  const double e = static_cast<double>(n_experts);
  require(target_h > 1.0 / e && target_h < 1.0, fmt::format("Simpson target {} must lie in (1/E, 1)", target_h));
  return (1.0 - target_h) / (target_h * e - 1.0);
}

double lambda_for_subset_variance(int64_t n_experts, int64_t k, double a_hi, double a_lo, double target_variance) {
  const BetaParams unit = subset_mass_beta(n_experts, k, 1.0, a_hi, a_lo);
  const double m = unit.mean();
  require(target_variance > 0 && target_variance < m * (1 - m),
          fmt::format("subset-mass variance target {} must lie in (0, m(1-m) = {})", target_variance, m * (1 - m)));
  return (m * (1 - m) / target_variance - 1.0) / (unit.a + unit.b);
}

}  // namespace dirmoe
