#include "dirmoe/stats/dirmoe_calibration.h"

#include <algorithm>
#include <cmath>
#include <vector>

#include "dirmoe/stats/routing_metrics.h"

namespace dirmoe {

DirmoeCalibration dirmoe_calibration(const Config& config, int64_t step) {
  const auto& d = config.router.dirmoe;
  const int64_t E = config.model.n_experts;
  const int64_t k = config.model.n_experts_active;
  const double t = d.schedules ? static_cast<double>(std::max<int64_t>(step, 0)) : 0.0;
  DirmoeCalibration c;
  c.step = step;
  c.tau = std::max(d.tau_min, d.tau_start * std::pow(d.tau_decay, t));
  c.a_hi = d.a_hi;
  c.a_lo = d.a_lo_end + (d.a_lo_start - d.a_lo_end) * std::pow(d.a_lo_gamma, t / d.a_lo_eta);
  const double ramp = d.lambda_p_steps > 0 ? std::min(1.0, t / d.lambda_p_steps) : 1.0;
  c.lambda_p = d.lambda_p_start + (d.lambda_p_end - d.lambda_p_start) * ramp;
  const double hi = static_cast<double>(k) * c.a_hi;
  const double lo = static_cast<double>(E - k) * c.a_lo;
  c.active_mass = hi / (hi + lo);
  c.active_mass_var = c.active_mass * (1 - c.active_mass) / (c.lambda_p * (hi + lo) + 1);
  std::vector<double> a(static_cast<size_t>(E), c.a_lo);
  std::fill(a.begin(), a.begin() + k, c.a_hi);
  c.simpson = stats::dirichlet_simpson(c.lambda_p, a);
  c.effective_experts = stats::effective_number(c.simpson);
  return c;
}

}  // namespace dirmoe
