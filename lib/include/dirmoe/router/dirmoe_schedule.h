#pragma once
// Training-step schedules of the DirMoE router (DESIGN.md "DirMoE", schedules): exploratory early
// (high τ_z, flat prior), decisive late (low τ_z, peaked prior, less leak from inactive experts).
#include <cstdint>

#include "dirmoe/config/config.h"

namespace dirmoe {

/// The scheduled values at one step.
struct DirmoeScheduleValues {
  double tau = 0.0;       // τ_z(t) = max(τ_min, τ_0·ρ^t)
  double a_lo = 0.0;      // a_lo(t) = a_lo,end + (a_lo,0 − a_lo,end)·γ^(t/η)
  double lambda_p = 0.0;  // λ^p(t): linear from lambda_p_start to lambda_p_end over lambda_p_steps
  double aux_scale = 1.0; // s(t) = end + (1 − end)·0.5^(t/half_life): factor on the usage KL and sparsity terms
};

/// Evaluates the three schedules of `config` at `step` (≥ 0). With config.schedules == false every
/// value stays at its start (τ_0, a_lo,0, λ^p_start).
DirmoeScheduleValues dirmoe_schedule(const DirmoeRouterConfig& config, int64_t step);

}  // namespace dirmoe
