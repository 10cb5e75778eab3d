#pragma once
// DirMoE's calibration knobs (arXiv 2602.09001 §5, DESIGN.md "calibration knobs"): what the prior
// Dir(λ^p·a) with a = (a_hi × k, a_lo × (E−k)) predicts at a training step, reported by
// dirmoe-analyze beside the measured routing.
//   active mass T = Σ_{i∈S} θ_i ~ Beta(k·λ·a_hi, (E−k)·λ·a_lo): m = k·a_hi / (k·a_hi + (E−k)·a_lo),
//   Var[T] = m(1−m)/(λ·(k·a_hi + (E−k)·a_lo) + 1);  E[Σθ²] = (λ·S₂/B + 1)/(λ·B + 1).
#include <cstdint>

#include "dirmoe/config/config.h"

namespace dirmoe {

struct DirmoeCalibration {
  int64_t step = 0;
  double lambda_p = 0;         // λ^p(t)
  double a_hi = 0;
  double a_lo = 0;             // a_lo(t)
  double tau = 0;              // τ_z(t)
  double active_mass = 0;      // m = E[T]
  double active_mass_var = 0;  // Var[T]
  double simpson = 0;          // E[Σθ²] under the prior
  double effective_experts = 0;  // 1 / E[Σθ²]
};

/// The prior at step t, from dirmoe_schedule() (router/dirmoe_schedule.h) and the formulas of
/// router/dirichlet_calibration.h; the schedules (DESIGN.md) are τ_z(t) = max(τ_min, τ_0·decay^t),
/// a_lo(t) = a_lo,end + (a_lo,0 − a_lo,end)·γ^(t/η), λ^p linear from start to end over
/// lambda_p_steps (start values throughout when router.dirmoe.schedules is false).
DirmoeCalibration dirmoe_calibration(const Config& config, int64_t step);

}  // namespace dirmoe
