// resume_config_difference: which config changes refuse a resume, the message that names the setting,
// and the value a setting added after the checkpoint takes.
#include <catch2/catch.hpp>

#include "dirmoe/config/config.h"
#include "dirmoe/train/run_resume.h"

using dirmoe::Config;
using dirmoe::config_to_json;
using dirmoe::resume_config_difference;

namespace {
Config dirmoe_config() {
  Config c;
  c.router.type = "dirmoe";
  return c;
}
}  // namespace

TEST_CASE("resume: the same config agrees; expert parallelism may change", "[train][resume]") {
  Config now = dirmoe_config();
  CHECK(resume_config_difference(config_to_json(now), config_to_json(now)).empty());
  Config then = now;
  then.model.expert_parallel = !now.model.expert_parallel;
  CHECK(resume_config_difference(config_to_json(then), config_to_json(now)).empty());
}

TEST_CASE("resume: a model or active router setting differs, and the message names it", "[train][resume]") {
  const Config now = dirmoe_config();
  Config then = now;
  then.model.d_model = now.model.d_model * 2;
  CHECK(resume_config_difference(config_to_json(then), config_to_json(now)).rfind("model.d_model: ", 0) == 0);
  then = now;
  then.router.dirmoe.lambda_q = 7.0;
  const std::string d = resume_config_difference(config_to_json(then), config_to_json(now));
  CHECK(d.rfind("router.dirmoe.lambda_q: 7.0 in the checkpoint, ", 0) == 0);
  then = now;
  then.router.type = "topk";
  CHECK(resume_config_difference(config_to_json(then), config_to_json(now)).rfind("router.type: ", 0) == 0);
}

TEST_CASE("resume: another router's section does not reach the run", "[train][resume]") {
  Config now;
  now.router.type = "topk";
  Config then = now;
  then.router.dirmoe.lambda_q = 7.0;
  CHECK(resume_config_difference(config_to_json(then), config_to_json(now)).empty());
  then.router.topk.balance_coef = 0.5;
  CHECK(resume_config_difference(config_to_json(then), config_to_json(now)).rfind("router.topk.balance_coef", 0) == 0);
}

TEST_CASE("resume: a checkpoint from before alpha_mlp_precision ran its α MLP in float32", "[train][resume]") {
  // a config.json written before the setting existed has no such key
  nlohmann::json then = config_to_json(dirmoe_config());
  then["router"]["dirmoe"].erase("alpha_mlp_precision");
  Config now = dirmoe_config();
  now.router.dirmoe.alpha_mlp_precision = "fp32";
  CHECK(resume_config_difference(then, config_to_json(now)).empty());
  now.router.dirmoe.alpha_mlp_precision = "auto";  // the default now: bf16 under bf16 autocast
  CHECK(resume_config_difference(then, config_to_json(now)) ==
        R"(router.dirmoe.alpha_mlp_precision: "fp32" in the checkpoint, "auto" now)");
  // a Switch run of that revision resumes with today's defaults
  Config switch_now;
  switch_now.router.type = "topk";
  nlohmann::json switch_then = config_to_json(switch_now);
  switch_then["router"]["dirmoe"].erase("alpha_mlp_precision");
  CHECK(resume_config_difference(switch_then, config_to_json(switch_now)).empty());
}
