#include "dirmoe/train/load_tracker.h"

#include <torch/torch.h>

#include "dirmoe/stats/routing_metrics.h"

namespace dirmoe {

LoadTracker::LoadTracker(int64_t n_layers, int64_t n_experts, double threshold)
    : n_layers_(n_layers), n_experts_(n_experts), threshold_(threshold) {}

void LoadTracker::add(const std::vector<torch::Tensor>& tokens_per_expert_L) {
  TORCH_CHECK(static_cast<int64_t>(tokens_per_expert_L.size()) == n_layers_, "LoadTracker::add: expected ", n_layers_,
              " layers, got ", tokens_per_expert_L.size());
  std::vector<torch::Tensor> rows;
  for (const auto& t : tokens_per_expert_L) {
    TORCH_CHECK(t.numel() == n_experts_, "LoadTracker::add: expected ", n_experts_, " experts, got ", t.numel());
    rows.push_back(t.detach().reshape({n_experts_}).to(torch::kFloat64));
  }
  const torch::Tensor step_LE = torch::stack(rows);
  if (!sum_LE_.defined()) {
    sum_LE_ = step_LE.clone();
  } else {
    sum_LE_.add_(step_LE.to(sum_LE_.device()));
  }
  ++steps_;
}

nlohmann::json LoadTracker::report() const {
  nlohmann::json layers = nlohmann::json::array();
  nlohmann::json flagged = nlohmann::json::array();
  const torch::Tensor sums = sum_LE_.defined() ? sum_LE_.cpu().contiguous() : torch::Tensor();
  for (int64_t l = 0; l < n_layers_; ++l) {
    nlohmann::json entry = {{"layer", l}};
    if (steps_ > 0 && sums.defined()) {
      const double* row = sums.data_ptr<double>() + l * n_experts_;
      const std::vector<double> counts(row, row + n_experts_);
      const double imbalance = stats::load_imbalance(counts);
      entry["load_max_over_mean"] = imbalance;
      entry["load_cv"] = stats::coefficient_of_variation(counts);
      entry["flagged"] = imbalance > threshold_;
      if (imbalance > threshold_) flagged.push_back(l);
    } else {
      entry["load_max_over_mean"] = nullptr;
      entry["load_cv"] = nullptr;
      entry["flagged"] = false;
    }
    layers.push_back(entry);
  }
  return {{"threshold", threshold_},
          {"steps_measured", steps_},
          {"layers", layers},
          {"flagged_layers", flagged},
          {"ok", steps_ > 0 ? nlohmann::json(flagged.empty()) : nlohmann::json(nullptr)}};
}

nlohmann::json LoadTracker::state() const {
  nlohmann::json sums = nlohmann::json::array();
  if (sum_LE_.defined()) {
    const torch::Tensor s = sum_LE_.cpu().contiguous();
    sums = std::vector<double>(s.data_ptr<double>(), s.data_ptr<double>() + s.numel());
  }
  return {{"steps", steps_}, {"sum_tokens_per_expert", sums}};
}

void LoadTracker::restore(const nlohmann::json& state) {
  steps_ = 0;
  sum_LE_ = torch::Tensor();
  if (state.is_null() || state.empty()) return;
  steps_ = state.at("steps").get<int64_t>();
  const std::vector<double> values = state.at("sum_tokens_per_expert").get<std::vector<double>>();
  if (values.empty()) return;
  TORCH_CHECK(static_cast<int64_t>(values.size()) == n_layers_ * n_experts_,
              "LoadTracker::restore: expected ", n_layers_ * n_experts_, " sums, got ", values.size());
  sum_LE_ = torch::tensor(values, torch::kFloat64).reshape({n_layers_, n_experts_});
}

}  // namespace dirmoe
