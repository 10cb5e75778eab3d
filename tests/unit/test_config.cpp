// Config: JSON round trip, strict keys with the nearest name, typed --set, validate().
#include <catch2/catch.hpp>
#include <nlohmann/json.hpp>

#include "dirmoe/config/config.h"
#include "dirmoe/core/error.h"

using dirmoe::Config;
using dirmoe::ConfigError;
using Catch::Matchers::Contains;

TEST_CASE("config survives a JSON round trip", "[config]") {
  Config config;
  config.model.d_model = 128;
  config.router.type = "remoe";
  config.router.dirmoe.tau_start = 3.5;
  config.train.seed = 99;
  config.data.domain_weights["python"] = 2.0;
  config.eval.tasks = {"arc_easy", "piqa"};
  const auto json = dirmoe::config_to_json(config);
  const Config back = dirmoe::config_from_json(nlohmann::json::parse(json.dump()));
  CHECK(dirmoe::config_to_json(back) == json);
  CHECK(back.model.d_model == 128);
  CHECK(back.router.dirmoe.tau_start == 3.5);
  CHECK(back.data.domain_weights.at("python") == 2.0);
  CHECK(back.eval.tasks == std::vector<std::string>{"arc_easy", "piqa"});
}

TEST_CASE("a partial JSON keeps the other defaults", "[config]") {
  const Config config = dirmoe::config_from_json(nlohmann::json::parse(R"({"model": {"d_model": 64}})"));
  CHECK(config.model.d_model == 64);
  CHECK(config.model.n_layers == Config{}.model.n_layers);
}

TEST_CASE("unknown keys are rejected with the path and the nearest name", "[config]") {
  auto bad = nlohmann::json::parse(R"({"router": {"dirmoe": {"tau_strat": 1.0}}})");
  REQUIRE_THROWS_AS(dirmoe::config_from_json(bad, "run.json"), ConfigError);
  REQUIRE_THROWS_WITH(dirmoe::config_from_json(bad, "run.json"),
                      Contains("run.json") && Contains("router.dirmoe.tau_strat") &&
                          Contains("router.dirmoe.tau_start"));
}

TEST_CASE("wrong JSON types are rejected", "[config]") {
  auto bad = nlohmann::json::parse(R"({"model": {"d_model": "big"}})");
  REQUIRE_THROWS_WITH(dirmoe::config_from_json(bad), Contains("model.d_model") && Contains("integer"));
  auto fractional = nlohmann::json::parse(R"({"model": {"n_layers": 2.5}})");
  REQUIRE_THROWS_AS(dirmoe::config_from_json(fractional), ConfigError);
}

TEST_CASE("config override (--set) parses to the field's type", "[config]") {
  Config config;
  dirmoe::apply_override(config, "train.lr=3e-4");
  dirmoe::apply_override(config, "model.n_layers=4");
  dirmoe::apply_override(config, "router.topk.renormalize=true");
  dirmoe::apply_override(config, "router.type=topk");
  dirmoe::apply_override(config, "eval.tasks=arc_easy,boolq");
  dirmoe::apply_override(config, "data.domain_weights.python=0.5");
  CHECK(config.train.lr == Approx(3e-4));
  CHECK(config.model.n_layers == 4);
  CHECK(config.router.topk.renormalize);
  CHECK(config.router.type == "topk");
  CHECK(config.eval.tasks == std::vector<std::string>{"arc_easy", "boolq"});
  CHECK(config.data.domain_weights.at("python") == 0.5);
}

TEST_CASE("a bad config override (--set) is rejected with a message that says what to do", "[config]") {
  Config config;
  REQUIRE_THROWS_WITH(dirmoe::apply_override(config, "model.n_layer=4"), Contains("model.n_layers"));
  REQUIRE_THROWS_WITH(dirmoe::apply_override(config, "model.n_layers=four"), Contains("integer"));
  REQUIRE_THROWS_WITH(dirmoe::apply_override(config, "model.n_layers=4.5"), Contains("integer"));
  REQUIRE_THROWS_WITH(dirmoe::apply_override(config, "router.topk.renormalize=maybe"), Contains("true or false"));
  REQUIRE_THROWS_WITH(dirmoe::apply_override(config, "train.lr"), Contains("KEY=VALUE"));
  REQUIRE_THROWS_WITH(dirmoe::apply_override(config, "router=topk"), Contains("section"));
  REQUIRE_THROWS_WITH(dirmoe::apply_override(config, "train.seed=-1"), Contains("non-negative"));
  CHECK(config.model.n_layers == Config{}.model.n_layers);  // nothing half-applied
}

TEST_CASE("validate names the field to fix", "[config]") {
  Config config;
  CHECK_NOTHROW(config.validate());
  config.model.n_heads = 5;
  REQUIRE_THROWS_WITH(config.validate(), Contains("model.n_heads"));
  config = Config{};
  config.model.n_experts_active = 9;
  REQUIRE_THROWS_WITH(config.validate(), Contains("model.n_experts_active"));
  config = Config{};
  config.router.type = "moe";
  REQUIRE_THROWS_WITH(config.validate(), Contains("router.type"));
  config = Config{};
  config.router.dirmoe.selection = "medium";
  REQUIRE_THROWS_WITH(config.validate(), Contains("router.dirmoe.selection"));
}
