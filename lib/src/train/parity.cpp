#include "dirmoe/train/parity.h"

#include <cmath>

#include <torch/torch.h>

namespace dirmoe {

ParityTracker::ParityTracker(int64_t n_layers, double target_k, double tolerance)
    : n_layers_(n_layers), target_k_(target_k), tolerance_(tolerance) {}

void ParityTracker::add(const torch::Tensor& active_experts_L) {
  TORCH_CHECK(active_experts_L.dim() == 1 && active_experts_L.size(0) == n_layers_,
              "ParityTracker::add: expected (", n_layers_, ") measured E[k], got ", active_experts_L.sizes());
  const torch::Tensor value_L = active_experts_L.detach().to(torch::kFloat64);
  if (!sum_L_.defined()) {
    sum_L_ = value_L.clone();
  } else {
    sum_L_.add_(value_L.to(sum_L_.device()));
  }
  ++steps_;
}

std::vector<double> ParityTracker::mean_active_experts() const {
  std::vector<double> out(static_cast<size_t>(n_layers_), std::nan(""));
  if (steps_ == 0 || !sum_L_.defined()) return out;
  const torch::Tensor mean_L = (sum_L_ / static_cast<double>(steps_)).cpu().contiguous();
  for (int64_t l = 0; l < n_layers_; ++l) out[static_cast<size_t>(l)] = mean_L[l].item<double>();
  return out;
}

nlohmann::json ParityTracker::state() const {
  nlohmann::json sum = nlohmann::json::array();
  if (sum_L_.defined()) {
    const torch::Tensor s = sum_L_.cpu().contiguous();
    for (int64_t l = 0; l < n_layers_; ++l) sum.push_back(s[l].item<double>());
  }
  return {{"steps", steps_}, {"sum_active_experts", sum}};
}

void ParityTracker::restore(const nlohmann::json& state) {
  steps_ = state.at("steps").get<int64_t>();
  const auto& sum = state.at("sum_active_experts");
  if (sum.empty()) {
    sum_L_ = torch::Tensor();
    return;
  }
  TORCH_CHECK(static_cast<int64_t>(sum.size()) == n_layers_, "ParityTracker::restore: layer count mismatch");
  std::vector<double> values = sum.get<std::vector<double>>();
  sum_L_ = torch::tensor(values, torch::kFloat64);
}

nlohmann::json parity_report(const std::vector<double>& mean_active_experts_per_layer, double target_k,
                             double tolerance, int64_t steps_measured, std::optional<double> flops_per_token,
                             std::optional<double> total_flops) {
  nlohmann::json layers = nlohmann::json::array();
  nlohmann::json flagged = nlohmann::json::array();
  for (size_t l = 0; l < mean_active_experts_per_layer.size(); ++l) {
    const double mean = mean_active_experts_per_layer[l];
    nlohmann::json entry = {{"layer", l}};
    if (steps_measured > 0 && std::isfinite(mean)) {
      const double rel = std::abs(mean - target_k) / target_k;
      const bool bad = rel > tolerance;
      entry["mean_active_experts"] = mean;
      entry["relative_error"] = rel;
      entry["flagged"] = bad;
      if (bad) flagged.push_back(l);
    } else if (steps_measured > 0) {
      // A non-finite measurement is itself a parity failure.
      entry["mean_active_experts"] = nullptr;
      entry["relative_error"] = nullptr;
      entry["flagged"] = true;
      flagged.push_back(l);
    } else {
      entry["mean_active_experts"] = nullptr;
      entry["relative_error"] = nullptr;
      entry["flagged"] = false;
    }
    layers.push_back(entry);
  }
  nlohmann::json report = {{"target_k", target_k},
                           {"tolerance", tolerance},
                           {"steps_measured", steps_measured},
                           {"layers", layers},
                           {"flagged_layers", flagged}};
  report["ok"] = steps_measured > 0 ? nlohmann::json(flagged.empty()) : nlohmann::json(nullptr);
  report["flops_per_token"] = flops_per_token ? nlohmann::json(*flops_per_token) : nlohmann::json(nullptr);
  report["total_flops"] = total_flops ? nlohmann::json(*total_flops) : nlohmann::json(nullptr);
  return report;
}

}  // namespace dirmoe
