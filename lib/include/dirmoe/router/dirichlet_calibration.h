#pragma once
// Calibration knobs of DirMoE (arXiv 2602.09001 §5, DESIGN.md "DirMoE"): closed-form predictions
// of the routing weights' subset mass and Simpson index from the prior's concentrations, and their
// inverses. dirmoe-analyze reports these beside the measured values.
#include <cstdint>
#include <vector>

namespace dirmoe {

/// Beta(a, b) parameters of the active subset mass T = Σ_{i∈S} θ_i for θ ~ Dir(λ·a) with |S| = k
/// experts at a_hi and E − k at a_lo: a = k·λ·a_hi, b = (E−k)·λ·a_lo.
struct BetaParams {
  double a = 0.0;
  double b = 0.0;
  double mean() const { return a / (a + b); }
  double variance() const { return a * b / ((a + b) * (a + b) * (a + b + 1.0)); }
};
BetaParams subset_mass_beta(int64_t n_experts, int64_t k, double lambda, double a_hi, double a_lo);

/// a_hi/a_lo that puts mean active mass m on the k active experts: m/(1−m)·(E−k)/k. Needs k < E.
double active_mass_ratio(int64_t n_experts, int64_t k, double target_mass);

/// E[Σθ_i²] for θ ~ Dir(λ·a) with B = Σa_i, S₂ = Σa_i²: (λ·S₂/B + 1)/(λ·B + 1).
double expected_simpson(const std::vector<double>& a, double lambda);

/// λ giving E[Σθ²] = h for Dir(λ·a): λ = (1−h)/(h·B − S₂/B); needs S₂/B² < h < 1.
double lambda_for_simpson(const std::vector<double>& a, double target_h);

/// The symmetric case a = 1 over E experts: λ = (1−h)/(h·E − 1); needs 1/E < h < 1.
double lambda_for_simpson_symmetric(int64_t n_experts, double target_h);

/// λ giving Var[T] = v for the subset mass at fixed a_hi, a_lo:
/// Var[T] = m(1−m)/(λ·(k·a_hi + (E−k)·a_lo) + 1) ⇒ λ = (m(1−m)/v − 1)/(k·a_hi + (E−k)·a_lo).
/// Needs 0 < v < m(1−m).
double lambda_for_subset_variance(int64_t n_experts, int64_t k, double a_hi, double a_lo, double target_variance);

}  // namespace dirmoe
