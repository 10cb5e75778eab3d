// dirmoe_calibration: the prior's predictions at a step, checked against closed forms written out
// by hand here (not through the library's formula functions).
#include <catch2/catch.hpp>

#include <cmath>

#include "dirmoe/config/config.h"
#include "dirmoe/stats/dirmoe_calibration.h"

using namespace dirmoe;

namespace {

// E[Σθ²] for θ ~ Dir(α): Σ α_i(α_i + 1) / (α₀(α₀ + 1)), α = λ·a with k entries a_hi, E−k a_lo.
double simpson_closed_form(int E, int k, double lambda, double a_hi, double a_lo) {
  const double h = lambda * a_hi, l = lambda * a_lo;
  const double a0 = k * h + (E - k) * l;
  return (k * h * (h + 1) + (E - k) * l * (l + 1)) / (a0 * (a0 + 1));
}

}  // namespace

TEST_CASE("dirmoe_calibration follows the schedules and the Dirichlet closed forms", "[stats][dirmoe]") {
  Config config;
  config.model.n_experts = 8;
  config.model.n_experts_active = 2;
  auto& d = config.router.dirmoe;
  d.schedules = true;
  d.a_hi = 1.5;
  d.a_lo_start = 0.2;
  d.a_lo_end = 0.05;
  d.a_lo_gamma = 0.5;
  d.a_lo_eta = 100;
  d.lambda_p_start = 2.0;
  d.lambda_p_end = 0.5;
  d.lambda_p_steps = 400;
  d.tau_start = 2.0;
  d.tau_decay = 0.99;
  d.tau_min = 0.5;

  const int64_t step = 100;  // one half-life of a_lo, a quarter of the λ^p ramp
  const DirmoeCalibration c = dirmoe_calibration(config, step);
  CHECK(c.step == step);
  CHECK(c.a_lo == Approx(0.05 + 0.15 * 0.5));
  CHECK(c.lambda_p == Approx(2.0 - 1.5 * 0.25));
  CHECK(c.tau == Approx(2.0 * std::pow(0.99, 100)));
  CHECK(c.a_hi == Approx(1.5));
  // Active mass ~ Beta(k·λ·a_hi, (E−k)·λ·a_lo).
  const double A = 2 * c.lambda_p * 1.5, B = 6 * c.lambda_p * 0.125;
  CHECK(c.active_mass == Approx(A / (A + B)));
  CHECK(c.active_mass_var == Approx(A * B / ((A + B) * (A + B) * (A + B + 1))));
  CHECK(c.simpson == Approx(simpson_closed_form(8, 2, c.lambda_p, 1.5, 0.125)));
  CHECK(c.effective_experts == Approx(1.0 / c.simpson));

  SECTION("late: τ at its floor, λ^p at its end") {
    const DirmoeCalibration late = dirmoe_calibration(config, 100000);
    CHECK(late.tau == Approx(0.5));
    CHECK(late.lambda_p == Approx(0.5));
    CHECK(late.a_lo == Approx(0.05).epsilon(1e-6));
    CHECK(late.simpson == Approx(simpson_closed_form(8, 2, 0.5, 1.5, late.a_lo)));
  }
  SECTION("schedules off: start values at every step") {
    d.schedules = false;
    const DirmoeCalibration off = dirmoe_calibration(config, 5000);
    CHECK(off.tau == Approx(2.0));
    CHECK(off.a_lo == Approx(0.2));
    CHECK(off.lambda_p == Approx(2.0));
    CHECK(off.simpson == Approx(simpson_closed_form(8, 2, 2.0, 1.5, 0.2)));
  }
}
