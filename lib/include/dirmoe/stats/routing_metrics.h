#pragma once
// Routing metrics as pure functions on host data (DESIGN.md "Routing statistics"). Inputs are
// non-negative counts or weights; functions normalise them themselves. An undefined value (empty
// input, zero total) is NaN, never an exception, so a report can show "—" for an unused expert.
//
// Simpson index S = Σ_i p_i² is the probability that two independent draws land in the same class;
// 1/n ≤ S ≤ 1 over n classes, and 1/S is the effective number of classes.
#include <cstdint>
#include <vector>

namespace dirmoe::stats {

/// Σ_i p_i² with p = values / Σ values. NaN if the total is 0.
double simpson_index(const std::vector<double>& values);
/// 1/S: the number of equally used classes with the same Simpson index. NaN if S is NaN or 0.
double effective_number(double simpson);
/// (S − 1/n)/(1 − 1/n): 0 for a uniform spread over n classes, 1 for a single class. NaN if n ≤ 1.
double normalized_simpson(double simpson, int64_t n_classes);

/// max_e c_e / mean_e c_e (1 = perfectly balanced, E = everything on one expert).
double load_imbalance(const std::vector<double>& counts);
/// Population standard deviation over mean of the counts.
double coefficient_of_variation(const std::vector<double>& counts);
/// Shannon entropy −Σ p ln p (nats) of the normalised counts; ln E for a balanced load.
double entropy(const std::vector<double>& counts);
/// Σ_k k·h_k / Σ_k h_k for a histogram h over 0..E active experts per token.
double mean_active_experts(const std::vector<int64_t>& hist);

/// Row-major (Dn, E) matrix of routing weight by domain and expert → Σ_d p(d|e)² for each expert,
/// with p(d|e) = M[d,e]/Σ_d M[d,e] (NaN for an expert that received no weight).
std::vector<double> expert_domain_simpson(const std::vector<double>& domain_expert, int64_t n_domains,
                                          int64_t n_experts);
/// Same matrix → Σ_e p(e|d)² for each domain, p(e|d) = M[d,e]/Σ_e M[d,e].
std::vector<double> domain_expert_simpson(const std::vector<double>& domain_expert, int64_t n_domains,
                                          int64_t n_experts);

/// E[Σ θ_i²] for θ ~ Dir(λ·1_K): (λ+1)/(Kλ+1), the reference curve for the token Simpson index.
double dirichlet_symmetric_simpson(double lambda, int64_t k);
/// E[Σ θ_i²] for θ ~ Dir(λ·a): (λ·S₂/B + 1)/(λ·B + 1) with B = Σ a_i, S₂ = Σ a_i².
double dirichlet_simpson(double lambda, const std::vector<double>& a);
/// The λ at which a symmetric Dir(λ) over K classes has E[Σθ²] = h: (1−h)/(h·K − 1).
double dirichlet_lambda_for_simpson(double h, int64_t k);

std::vector<double> to_double(const std::vector<int64_t>& values);

}  // namespace dirmoe::stats
