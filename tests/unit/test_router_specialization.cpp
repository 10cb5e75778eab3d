// Specialization on a task with a known best routing (tests/support/synthetic_specialization.h):
// E clusters, each with its own linear target map, so that one expert per cluster is optimal. A
// router that specializes spreads the tokens over most experts and keeps each cluster on one.
#include <catch2/catch.hpp>
#include <torch/torch.h>

#include "../support/synthetic_specialization.h"
#include "dirmoe/config/config.h"

using dirmoe::Config;
using dirmoe::testing::SpecializationResult;
using dirmoe::testing::SpecializationTask;
using dirmoe::testing::train_specialization;

namespace {

Config task_config(const std::string& router) {
  Config config;
  config.model.d_model = 32;
  config.model.n_heads = 1;
  config.model.n_kv_heads = 1;
  config.model.d_ff = 32;
  config.model.n_experts = 8;
  config.model.n_experts_active = 1;
  config.model.init_std = 0.1;
  config.router.type = router;
  config.router.dirmoe.alpha_hidden = 16;
  config.router.dirmoe.tau_decay = 0.995;  // the recipes' schedules, scaled to a 400-step run
  config.router.dirmoe.a_lo_eta = 100;
  config.router.dirmoe.lambda_p_steps = 200;
  return config;
}

void describe(const std::string& what, const SpecializationResult& r) {
  std::string shares;
  for (double s : r.load_share_E) shares += std::to_string(s).substr(0, 5) + " ";
  WARN(what << ": purity " << r.purity << ", experts with >= 5% of tokens " << r.experts_over(0.05)
            << ", E[k] at eval " << r.active_experts << ", MSE " << r.final_mse << ", load shares " << shares);
}

}  // namespace

TEST_CASE("Switch and DirMoE specialize on clusters with their own target maps", "[router][specialization]") {
  torch::set_num_threads(1);
  const SpecializationTask task;
  SECTION("switch") {
    const SpecializationResult r = train_specialization(task_config("topk"), task);
    describe("switch", r);
    CHECK(r.experts_over(0.05) >= 6);
    CHECK(r.purity >= 0.8);
  }
  SECTION("dirmoe") {
    const SpecializationResult r = train_specialization(task_config("dirmoe"), task);
    describe("dirmoe", r);
    CHECK(r.experts_over(0.05) >= 6);
    CHECK(r.purity >= 0.8);
    CHECK(r.active_experts == Approx(1.0).epsilon(0.03));
  }
}

// The first DirMoE recipe (threshold dispatch, r renormalised over the dispatched experts, σ² = D,
// λ_s = 10 on the per-token penalty, no usage terms) leaves experts idle on the same task: the test
// above can tell the two apart (docs/dirmoe.md).
TEST_CASE("the first DirMoE recipe does not spread the clusters over the experts", "[router][specialization]") {
  torch::set_num_threads(1);
  Config config = task_config("dirmoe");
  auto& d = config.router.dirmoe;
  d.selection = "hard";
  d.weights = "dispatched";
  d.recon_variance = static_cast<double>(config.model.d_model);
  d.lambda_sparsity = 10.0;
  d.sparsity_penalty = "token";
  d.gate_bias_init = "tau_logit";
  d.center_logits = false;
  d.usage_kl = 0.0;
  d.balance_coef = 0.0;
  const SpecializationResult r = train_specialization(config, SpecializationTask{});
  describe("first dirmoe recipe", r);
  CHECK(r.experts_over(0.05) < 6);
}
