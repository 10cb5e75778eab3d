#include "dirmoe/stats/routing_metrics.h"

#include <algorithm>
#include <cmath>
#include <limits>
#include <numeric>

namespace dirmoe::stats {

namespace {
constexpr double kNaN = std::numeric_limits<double>::quiet_NaN();

double total(const std::vector<double>& values) { return std::accumulate(values.begin(), values.end(), 0.0); }
}  // namespace

double simpson_index(const std::vector<double>& values) {
  const double sum = total(values);
  if (!(sum > 0)) return kNaN;
  double s = 0;
  for (double v : values) s += (v / sum) * (v / sum);
  return s;
}

double effective_number(double simpson) { return simpson > 0 ? 1.0 / simpson : kNaN; }

double normalized_simpson(double simpson, int64_t n_classes) {
  if (n_classes <= 1 || std::isnan(simpson)) return kNaN;
  const double floor = 1.0 / static_cast<double>(n_classes);
  return (simpson - floor) / (1.0 - floor);
}

double load_imbalance(const std::vector<double>& counts) {
  if (counts.empty()) return kNaN;
  const double mean = total(counts) / static_cast<double>(counts.size());
  if (!(mean > 0)) return kNaN;
  return *std::max_element(counts.begin(), counts.end()) / mean;
}

double coefficient_of_variation(const std::vector<double>& counts) {
  if (counts.empty()) return kNaN;
  const double n = static_cast<double>(counts.size());
  const double mean = total(counts) / n;
  if (!(mean > 0)) return kNaN;
  double var = 0;
  for (double c : counts) var += (c - mean) * (c - mean);
  return std::sqrt(var / n) / mean;
}

double entropy(const std::vector<double>& counts) {
  const double sum = total(counts);
  if (!(sum > 0)) return kNaN;
  double h = 0;
  for (double c : counts) {
    if (c > 0) h -= (c / sum) * std::log(c / sum);
  }
  return h;
}

double mean_active_experts(const std::vector<int64_t>& hist) {
  double tokens = 0, active = 0;
  for (size_t k = 0; k < hist.size(); ++k) {
    tokens += static_cast<double>(hist[k]);
    active += static_cast<double>(k) * static_cast<double>(hist[k]);
  }
  return tokens > 0 ? active / tokens : kNaN;
}

std::vector<double> expert_domain_simpson(const std::vector<double>& domain_expert, int64_t n_domains,
                                          int64_t n_experts) {
  std::vector<double> out(static_cast<size_t>(n_experts));
  std::vector<double> column(static_cast<size_t>(n_domains));
  for (int64_t e = 0; e < n_experts; ++e) {
    for (int64_t d = 0; d < n_domains; ++d) column[d] = domain_expert[d * n_experts + e];
    out[e] = simpson_index(column);
  }
  return out;
}

std::vector<double> domain_expert_simpson(const std::vector<double>& domain_expert, int64_t n_domains,
                                          int64_t n_experts) {
  std::vector<double> out(static_cast<size_t>(n_domains));
  for (int64_t d = 0; d < n_domains; ++d) {
    std::vector<double> row(domain_expert.begin() + d * n_experts, domain_expert.begin() + (d + 1) * n_experts);
    out[d] = simpson_index(row);
  }
  return out;
}

double dirichlet_symmetric_simpson(double lambda, int64_t k) {
  return (lambda + 1.0) / (static_cast<double>(k) * lambda + 1.0);
}

double dirichlet_simpson(double lambda, const std::vector<double>& a) {
  double b = 0, s2 = 0;
  for (double v : a) {
    b += v;
    s2 += v * v;
  }
  return (lambda * s2 / b + 1.0) / (lambda * b + 1.0);
}

double dirichlet_lambda_for_simpson(double h, int64_t k) {
  const double denom = h * static_cast<double>(k) - 1.0;
  if (!(denom > 0) || !(h < 1)) return kNaN;
  return (1.0 - h) / denom;
}

std::vector<double> to_double(const std::vector<int64_t>& values) {
  return std::vector<double>(values.begin(), values.end());
}

}  // namespace dirmoe::stats
