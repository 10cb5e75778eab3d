#include "dirmoe/stats/dirmoe_calibration.h"

#include <vector>

#include "dirmoe/router/dirichlet_calibration.h"
#include "dirmoe/router/dirmoe_schedule.h"

namespace dirmoe {

// A composition of the router's own schedule and the §5 formulas, so that the predictions are
// always those of the prior the router samples from at `step`.
DirmoeCalibration dirmoe_calibration(const Config& config, int64_t step) {
  const auto& d = config.router.dirmoe;
  const int64_t E = config.model.n_experts;
  const int64_t k = config.model.n_experts_active;
  const DirmoeScheduleValues s = dirmoe_schedule(d, step);
  DirmoeCalibration c;
  c.step = step;
  c.tau = s.tau;
  c.a_hi = d.a_hi;
  c.a_lo = s.a_lo;
  c.lambda_p = s.lambda_p;
  const BetaParams mass = subset_mass_beta(E, k, c.lambda_p, c.a_hi, c.a_lo);
  c.active_mass = mass.mean();
  c.active_mass_var = mass.variance();
  std::vector<double> a(static_cast<size_t>(E), c.a_lo);
  for (int64_t i = 0; i < k && i < E; ++i) a[static_cast<size_t>(i)] = c.a_hi;
  c.simpson = expected_simpson(a, c.lambda_p);
  c.effective_experts = c.simpson > 0 ? 1.0 / c.simpson : 0.0;
  return c;
}

}  // namespace dirmoe
