// The compute-parity flag of summary.json: a layer whose mean measured E[k] after warm-up strays
// more than the tolerance from k is flagged.
#include <catch2/catch.hpp>
#include <torch/torch.h>

#include "dirmoe/train/parity.h"

TEST_CASE("parity report flags layers beyond the tolerance", "[train][parity]") {
  const auto report = dirmoe::parity_report({1.00, 1.04, 1.06, 0.90}, /*target_k=*/1.0, /*tolerance=*/0.05,
                                            /*steps_measured=*/10);
  CHECK(report["layers"][0]["flagged"] == false);
  CHECK(report["layers"][1]["flagged"] == false);
  CHECK(report["layers"][2]["flagged"] == true);
  CHECK(report["layers"][3]["flagged"] == true);
  CHECK(report["flagged_layers"] == nlohmann::json::array({2, 3}));
  CHECK(report["ok"] == false);
  CHECK(report["layers"][2]["relative_error"].get<double>() == Approx(0.06));
}

TEST_CASE("parity report: all within tolerance is ok; k=2 is relative", "[train][parity]") {
  auto report = dirmoe::parity_report({2.09, 1.91}, 2.0, 0.05, 5, 1.5e9, 3e15);
  CHECK(report["ok"] == true);
  CHECK(report["flops_per_token"].get<double>() == Approx(1.5e9));
  report = dirmoe::parity_report({2.11}, 2.0, 0.05, 5);
  CHECK(report["ok"] == false);
  CHECK(report["total_flops"].is_null());
}

TEST_CASE("parity report: nothing measured means no verdict; NaN is flagged", "[train][parity]") {
  auto report = dirmoe::parity_report({std::nan(""), std::nan("")}, 1.0, 0.05, 0);
  CHECK(report["ok"].is_null());
  CHECK(report["flagged_layers"].empty());
  report = dirmoe::parity_report({1.0, std::nan("")}, 1.0, 0.05, 3);
  CHECK(report["ok"] == false);
  CHECK(report["flagged_layers"] == nlohmann::json::array({1}));
}

TEST_CASE("parity tracker averages per layer and survives a state round trip", "[train][parity]") {
  dirmoe::ParityTracker tracker(2, 1.0, 0.05);
  tracker.add(torch::tensor({1.0f, 2.0f}));
  tracker.add(torch::tensor({3.0f, 2.5f}));
  auto mean = tracker.mean_active_experts();
  CHECK(mean[0] == Approx(2.0));
  CHECK(mean[1] == Approx(2.25));
  dirmoe::ParityTracker copy(2, 1.0, 0.05);
  copy.restore(tracker.state());
  copy.add(torch::tensor({2.0f, 2.0f}));
  CHECK(copy.steps() == 3);
  CHECK(copy.mean_active_experts()[0] == Approx(2.0));
  CHECK_THROWS(copy.add(torch::tensor({1.0f})));
}
