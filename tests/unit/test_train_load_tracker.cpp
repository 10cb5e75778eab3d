// The load block of summary.json: tokens per expert summed over the steps after warm-up; a layer
// whose load max/mean exceeds the threshold is flagged.
#include <catch2/catch.hpp>
#include <torch/torch.h>

#include "dirmoe/train/load_tracker.h"

TEST_CASE("load tracker sums steps and flags concentrated layers", "[train][load]") {
  dirmoe::LoadTracker tracker(/*n_layers=*/2, /*n_experts=*/4, /*threshold=*/2.0);
  CHECK(tracker.report()["ok"].is_null());
  // layer 0 balanced over the two steps (10, 10, 10, 10); layer 1: 30 of 40 tokens on expert 2
  tracker.add({torch::tensor({8, 2, 6, 4}), torch::tensor({0, 1, 18, 1})});
  tracker.add({torch::tensor({2, 8, 4, 6}), torch::tensor({2, 3, 12, 3})});
  const auto report = tracker.report();
  CHECK(report["steps_measured"] == 2);
  CHECK(report["layers"][0]["load_max_over_mean"].get<double>() == Approx(1.0));
  CHECK(report["layers"][0]["load_cv"].get<double>() == Approx(0.0).margin(1e-12));
  CHECK(report["layers"][1]["load_max_over_mean"].get<double>() == Approx(30.0 / 10.0));
  CHECK(report["layers"][1]["flagged"] == true);
  CHECK(report["flagged_layers"] == nlohmann::json::array({1}));
  CHECK(report["ok"] == false);
}

TEST_CASE("load tracker state survives a round trip and an absent state starts afresh", "[train][load]") {
  dirmoe::LoadTracker tracker(1, 2, 2.0);
  tracker.add({torch::tensor({3, 1})});
  dirmoe::LoadTracker copy(1, 2, 2.0);
  copy.restore(tracker.state());
  copy.add({torch::tensor({1, 3})});
  CHECK(copy.steps() == 2);
  CHECK(copy.report()["layers"][0]["load_max_over_mean"].get<double>() == Approx(1.0));
  CHECK(copy.report()["ok"] == true);
  dirmoe::LoadTracker fresh(1, 2, 2.0);
  fresh.restore(nlohmann::json::object());
  CHECK(fresh.steps() == 0);
  CHECK_THROWS(copy.add({torch::tensor({1, 2, 3})}));
}
