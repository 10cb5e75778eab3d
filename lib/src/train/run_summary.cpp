#include "dirmoe/train/run_summary.h"

#include <cmath>

#include <fmt/format.h>

#include "dirmoe/core/build_info.h"
#include "dirmoe/stats/routing_report.h"
#include "dirmoe/train/parity.h"

namespace dirmoe {

nlohmann::json run_summary(const Config& config, const RunCounters& c, const TrainableModel& model,
                           const RunSetup& setup) {
  const TrainConfig& train = config.train;
  const std::vector<double> ek_mean = c.parity.mean_active_experts();
  const std::optional<double> fpt = c.parity.steps() > 0 ? model.flops_per_token(ek_mean) : std::optional<double>();
  nlohmann::json parity = parity_report(ek_mean, static_cast<double>(config.model.n_experts_active),
                                        train.parity_tolerance, c.parity.steps(), fpt,
                                        c.flops_known ? std::optional<double>(c.total_flops) : std::nullopt);
  parity["warmup_steps"] = setup.warmup_steps;
  nlohmann::json summary = {
      {"status", setup.status},
      {"router", config.router.type},
      {"steps", c.step},
      {"max_steps", train.max_steps},
      {"tokens", c.tokens},
      {"world_size", setup.world_size},
      {"expert_parallel", setup.expert_parallel},
      {"device", setup.device},
      {"precision", setup.bf16 ? "bf16-autocast" : "fp32"},
      {"tokens_per_s", c.train_seconds > 0 ? static_cast<double>(c.tokens) / c.train_seconds : 0.0},
      {"final_val_loss", finite_or_null(c.last_val)},
      {"final_val_ppl", finite_or_null(std::exp(c.last_val))},
      {"best_val_loss", finite_or_null(c.best_val)},
      {"best_step", c.best_step},
      {"clipped_steps",
       {{"count", static_cast<int64_t>(c.clipped_steps)},
        {"fraction", c.step > 0 ? c.clipped_steps / static_cast<double>(c.step) : 0.0},
        {"grad_clip", train.grad_clip}}},
      {"parity", parity},
      {"load", c.load.report()},
      {"git_revision", git_revision()},
  };
  if (const auto counts = model.parameter_counts()) {
    summary["parameters"] = {{"total", counts->total()},       {"embedding", counts->embedding},
                             {"attention", counts->attention}, {"experts", counts->experts},
                             {"router", counts->router},       {"norms", counts->norms},
                             {"head", counts->head}};
  }
  return summary;
}

std::vector<std::string> run_summary_warnings(const nlohmann::json& summary, const Config& config) {
  std::vector<std::string> warnings;
  const nlohmann::json& parity = summary.at("parity");
  if (parity["ok"].is_boolean() && !parity["ok"].get<bool>()) {
    warnings.push_back(fmt::format("warning: compute parity: layers {} stray more than {:.0f}% from k = {} (see summary.json)",
                                   parity["flagged_layers"].dump(), 100 * config.train.parity_tolerance,
                                   config.model.n_experts_active));
  }
  const nlohmann::json& load = summary.at("load");
  if (load["ok"].is_boolean() && !load["ok"].get<bool>()) {
    warnings.push_back(fmt::format("warning: expert load: layers {} send more than {} times the mean load to one expert "
                                   "after warm-up (see summary.json)",
                                   load["flagged_layers"].dump(), kDefaultLoadThreshold));
  }
  return warnings;
}

}  // namespace dirmoe
