// The non-finite guard alone (no training): a NaN or Inf in one term names that term and the first
// step it went bad at, lists every term bad at that step, names the last good checkpoint and writes a
// "diverged" summary.json; finite steps pass without a word.
// NOTE: torch before Catch: c10 defines a glog-style CHECK macro that would otherwise replace
// Catch's in builds without the precompiled header.
#include <torch/torch.h>
#include <catch2/catch.hpp>
#include <unistd.h>

#include <filesystem>
#include <limits>

#include <nlohmann/json.hpp>

#include "dirmoe/core/atomic_file.h"
#include "dirmoe/train/nonfinite_guard.h"

namespace fs = std::filesystem;

namespace {

const std::vector<std::string> kNames{"lm_loss", "aux/dirmoe_recon", "aux/dirmoe_usage_kl", "grad_norm"};

std::vector<torch::Tensor> values(double lm, double recon, double usage, double grad) {
  return {torch::tensor(lm), torch::tensor(recon), torch::tensor(usage), torch::tensor(grad)};
}

}  // namespace

TEST_CASE("non-finite guard: a NaN in one term names it and its step", "[train][guard]") {
  const fs::path dir = fs::temp_directory_path() / ("dirmoe_guard_" + std::to_string(::getpid()));
  fs::remove_all(dir);
  fs::create_directories(dir);
  const double nan = std::numeric_limits<double>::quiet_NaN();
  const double inf = std::numeric_limits<double>::infinity();
  dirmoe::DistributedContext dist;
  dirmoe::NonFiniteGuard guard(torch::kCPU);
  for (int64_t step = 1; step <= 6; ++step) guard.record(step, kNames, values(5.0, 0.5, 0.1, 1.0));
  CHECK_NOTHROW(guard.check(dist, 6, dir / "step_6.ckpt", dir / "summary.json"));
  CHECK_FALSE(fs::exists(dir / "summary.json"));

  guard.record(7, kNames, values(5.0, 0.5, nan, 1.0));   // the usage term goes bad at step 7
  guard.record(8, kNames, values(nan, 0.5, nan, inf));   // everything else only later
  try {
    guard.check(dist, 8, dir / "step_6.ckpt", dir / "summary.json");
    FAIL("no TrainingDiverged");
  } catch (const dirmoe::TrainingDiverged& e) {
    const std::string msg = e.what();
    CHECK_THAT(msg, Catch::Contains("loss term 'aux/dirmoe_usage_kl' became NaN or Inf at step 7"));
    CHECK_THAT(msg, Catch::Contains("all terms non-finite at that step: aux/dirmoe_usage_kl)"));
    CHECK_THAT(msg, Catch::Contains("stopped at step 8"));
    CHECK_THAT(msg, Catch::Contains((dir / "step_6.ckpt").string()));
  }
  const auto summary = nlohmann::json::parse(dirmoe::read_file(dir / "summary.json"));
  CHECK(summary.at("status") == "diverged");
  CHECK(summary.at("bad_term") == "aux/dirmoe_usage_kl");
  CHECK(summary.at("bad_step") == 7);
  CHECK(summary.at("steps") == 8);
  CHECK(summary.at("bad_terms") == nlohmann::json::array({"aux/dirmoe_usage_kl"}));
  fs::remove_all(dir);
}

TEST_CASE("non-finite guard: terms bad at the same step are all listed; none written yet is said", "[train][guard]") {
  const fs::path dir = fs::temp_directory_path() / ("dirmoe_guard2_" + std::to_string(::getpid()));
  fs::remove_all(dir);
  fs::create_directories(dir);
  const double nan = std::numeric_limits<double>::quiet_NaN();
  dirmoe::DistributedContext dist;
  dirmoe::NonFiniteGuard guard(torch::kCPU);
  guard.record(1, kNames, values(5.0, 0.5, 0.1, 1.0));
  guard.record(2, kNames, values(nan, nan, 0.1, 1.0));
  try {
    guard.check(dist, 2, fs::path(), dir / "summary.json");
    FAIL("no TrainingDiverged");
  } catch (const dirmoe::TrainingDiverged& e) {
    const std::string msg = e.what();
    CHECK_THAT(msg, Catch::Contains("at step 2"));
    CHECK_THAT(msg, Catch::Contains("lm_loss, aux/dirmoe_recon"));
    CHECK_THAT(msg, Catch::Contains("none was written yet"));
  }
  const auto summary = nlohmann::json::parse(dirmoe::read_file(dir / "summary.json"));
  CHECK(summary.at("bad_terms").size() == 2);
  fs::remove_all(dir);
}
