#pragma once
// The log step of dirmoe-train: the one place the host waits for the device. Every scalar of the step
// (LM loss, each auxiliary loss, gradient norm, per-layer E[k], dropped pairs, load CV, router metrics,
// per-term gradient norms, the clipped-step count) is packed into one tensor, averaged over ranks by one
// all-reduce and copied to the host once; then it becomes one metrics.jsonl line and the progress line.
//
// metrics.jsonl, one object per log step:
//   step, tokens, loss (LM + auxiliary), lm_loss, aux_losses {name: value}, lr, grad_norm (before
//   clipping), tokens_per_s, active_experts_target, active_experts_mean, layers [{active_experts,
//   load_cv, dropped_tokens, router {metric: value}}], router_metrics {metric: mean over layers},
//   flops_per_token (null without a calculator), grad_norm_terms {term: {trunk, router, gate}} on the
//   steps of train.grad_norm_terms_every, val_loss and val_ppl at validation steps.
#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>
#include <torch/types.h>

#include "dirmoe/train/distributed.h"
#include "dirmoe/train/train_step.h"

namespace dirmoe {

/// The step's figures on the host, averaged over ranks.
struct StepLogFigures {
  double lm_loss = 0;
  std::vector<double> aux_values;   // each auxiliary loss (coefficients applied), in aux_losses' order
  nlohmann::json aux_losses;        // {name: value}
  double grad_norm = 0;
  std::vector<double> active_experts_L;
  nlohmann::json layers;            // the metrics line's "layers" array
  nlohmann::json router_metrics;    // {metric: mean over layers}
  nlohmann::json grad_norm_terms;   // {term: {group: norm}}; empty unless measured this step
  double clipped_steps = 0;         // the running count of clipped steps

  /// LM loss + Σ auxiliary losses, added in that order.
  double loss() const;
  /// Σ auxiliary losses.
  double aux_total() const;
  /// Mean over layers of the measured E[k].
  double active_experts_mean() const;
};

/// Packs `step`'s figures and `clipped_steps` (a () device tensor), averages them over `dist`'s ranks and
/// copies them to the host. `n_layers` checks the model's layer count.
StepLogFigures gather_step_figures(const TrainStepResult& step, const torch::Tensor& clipped_steps,
                                   DistributedContext& dist, int64_t n_layers);

/// Everything else the metrics line holds.
struct StepLogContext {
  int64_t step = 0;
  int64_t tokens = 0;
  double lr = 0;
  double tokens_per_s = 0;
  int64_t active_experts_target = 1;
  std::optional<double> flops_per_token;
  std::optional<double> val_loss;  // set at validation steps
};

/// One metrics.jsonl object (documented above).
nlohmann::json metrics_line(const StepLogFigures& figures, const StepLogContext& context);

/// The progress line's text after "step N/M": the LM loss, the auxiliary total beside it (the figure
/// to compare across routers is the LM loss), tokens/s, ETA and the validation loss or E[k].
std::string progress_text(const StepLogFigures& figures, const StepLogContext& context, int64_t max_steps,
                          double eta_s);

}  // namespace dirmoe
