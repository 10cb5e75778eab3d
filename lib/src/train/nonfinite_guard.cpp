#include "dirmoe/train/nonfinite_guard.h"

#include <fmt/format.h>
#include <fmt/ranges.h>
#include <nlohmann/json.hpp>
#include <torch/torch.h>

#include "dirmoe/core/atomic_file.h"

namespace dirmoe {

void NonFiniteGuard::record(int64_t step, const std::vector<std::string>& names, const std::vector<torch::Tensor>& values) {
  TORCH_CHECK(names.size() == values.size(), "NonFiniteGuard: ", names.size(), " names for ", values.size(), " values");
  torch::NoGradGuard no_grad;
  std::vector<torch::Tensor> on_device;
  on_device.reserve(values.size());
  for (const auto& v : values) on_device.push_back(v.detach().to(device_).to(torch::kFloat32).reshape({}));
  const torch::Tensor bad_N = torch::logical_not(torch::isfinite(torch::stack(on_device)));
  if (!nonfinite_N_.defined() || names != names_) {
    names_ = names;
    const auto n = static_cast<int64_t>(names.size());
    nonfinite_N_ = torch::zeros({n}, torch::TensorOptions().dtype(torch::kBool).device(device_));
    first_bad_step_N_ = torch::full({n}, -1, torch::TensorOptions().dtype(torch::kInt64).device(device_));
  }
  first_bad_step_N_ = torch::where(bad_N & torch::logical_not(nonfinite_N_), torch::full_like(first_bad_step_N_, step),
                                   first_bad_step_N_);
  nonfinite_N_ = nonfinite_N_ | bad_N;
}

void NonFiniteGuard::check(DistributedContext& dist, int64_t current_step, const std::filesystem::path& last_checkpoint,
                           const std::filesystem::path& diverged_summary) const {
  if (!nonfinite_N_.defined()) return;
  torch::Tensor bad = nonfinite_N_.to(torch::kFloat32);
  dist.max_(bad);
  if (bad.max().item<float>() == 0.0f) return;
  const torch::Tensor bad_cpu = nonfinite_N_.cpu();
  const torch::Tensor first_cpu = first_bad_step_N_.cpu();
  std::string which = "a loss term on another rank";
  int64_t at_step = -1;
  for (size_t i = 0; i < names_.size(); ++i) {
    if (bad_cpu[static_cast<int64_t>(i)].item<bool>()) {
      const int64_t st = first_cpu[static_cast<int64_t>(i)].item<int64_t>();
      if (at_step < 0 || st < at_step) {
        at_step = st;
        which = names_[i];
      }
    }
  }
  // Every term that went bad at that first step: a NaN in a router's logits shows up in its own
  // auxiliary losses as well as in lm_loss, which tells it apart from a fault in the LM path.
  std::vector<std::string> all_at_step;
  for (size_t i = 0; i < names_.size(); ++i) {
    if (bad_cpu[static_cast<int64_t>(i)].item<bool>() && first_cpu[static_cast<int64_t>(i)].item<int64_t>() == at_step) {
      all_at_step.push_back(names_[i]);
    }
  }
  const std::string where = last_checkpoint.empty() ? std::string("none was written yet") : last_checkpoint.string();
  if (dist.is_main()) {
    nlohmann::json summary = {{"status", "diverged"}, {"bad_term", which},     {"bad_terms", all_at_step},
                              {"bad_step", at_step},  {"steps", current_step}, {"last_good_checkpoint", where}};
    write_file_atomic(diverged_summary, summary.dump(2) + "\n");
  }
  throw TrainingDiverged(fmt::format(
      "training diverged: loss term '{}' became NaN or Inf at step {} (rank {}; all terms non-finite at that step: "
      "{}); stopped at step {}. The last good checkpoint: {}. Lower train.lr or raise train.warmup_frac and resume "
      "with --resume",
      which, at_step, dist.rank(), fmt::join(all_at_step, ", "), current_step, where));
}

}  // namespace dirmoe
