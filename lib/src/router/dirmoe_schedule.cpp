#include "dirmoe/router/dirmoe_schedule.h"

#include <algorithm>
#include <cmath>

namespace dirmoe {

DirmoeScheduleValues dirmoe_schedule(const DirmoeRouterConfig& config, int64_t step) {
  DirmoeScheduleValues v;
  const double t = config.schedules ? static_cast<double>(std::max<int64_t>(step, 0)) : 0.0;
  v.tau = std::max(config.tau_min, config.tau_start * std::pow(config.tau_decay, t));
  v.a_lo = config.a_lo_end + (config.a_lo_start - config.a_lo_end) * std::pow(config.a_lo_gamma, t / config.a_lo_eta);
  const double progress = config.lambda_p_steps > 0 ? std::min(1.0, t / config.lambda_p_steps) : (t > 0 ? 1.0 : 0.0);
  v.lambda_p = config.lambda_p_start + (config.lambda_p_end - config.lambda_p_start) * progress;
  if (!config.schedules) v.lambda_p = config.lambda_p_start;
  // NOTE: with aux_scale_end = 1 the factor is exactly 1 (no rounding), so the default is unchanged.
  v.aux_scale = config.aux_scale_end == 1.0
                    ? 1.0
                    : config.aux_scale_end + (1.0 - config.aux_scale_end) * std::pow(0.5, t / config.aux_scale_half_life);
  return v;
}

}  // namespace dirmoe
