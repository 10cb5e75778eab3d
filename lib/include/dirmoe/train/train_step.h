#pragma once
// One optimiser step of dirmoe-train (DESIGN.md "Training"): router schedules to the step, the
// learning rate, grad_accum micro-batches of forward → LM cross-entropy + the routers' aux losses
// → backward, the gradient all-reduce, global-norm clipping, the AdamW step and the routers'
// controllers. The Trainer runs it in its loop; `make bench` times exactly this function.
//
// No host synchronisation: every figure of the step comes back as a device tensor, and the
// caller decides when to read them (the Trainer only at log steps).
#include <cstdint>
#include <map>
#include <string>
#include <vector>

#include <c10/core/ScalarType.h>
#include <torch/optim/optimizer.h>
#include <torch/types.h>

#include "dirmoe/train/batch_source.h"
#include "dirmoe/train/distributed.h"
#include "dirmoe/train/expert_parallel.h"
#include "dirmoe/train/trainable_model.h"

namespace dirmoe {

/// bf16 autocast on CUDA for the scope; parameters (the optimiser's master weights) stay fp32.
class AutocastScope {
 public:
  explicit AutocastScope(bool on);
  ~AutocastScope();
  AutocastScope(const AutocastScope&) = delete;
  AutocastScope& operator=(const AutocastScope&) = delete;

 private:
  bool on_;
  bool prev_enabled_ = false;
  c10::ScalarType prev_dtype_ = c10::kBFloat16;
};

/// What one step needs besides the model, optimiser and data.
struct TrainStepOptions {
  int64_t batch_size = 8;    // sequences per micro-batch and process
  int64_t grad_accum = 1;    // micro-batches per optimiser step
  int64_t seq_len = 1024;    // model.seq_len (longer windows from the source are cut)
  double lr = 5e-4;          // learning rate of this step
  double grad_clip = 1.0;    // global L2 norm; 0: no clipping
  bool bf16 = false;         // bf16 autocast (CUDA)
  torch::Device device = torch::kCPU;
  uint64_t seed = 0;         // train.seed: keys the router noise (router_noise_source.h)
  /// Sharded experts (null: every process holds every expert): their gradient reduction and norm.
  ExpertParallel* expert_parallel = nullptr;
  /// Measure the gradient norm of each loss term apart on this step (train.grad_norm_terms_every).
  bool grad_norm_terms = false;
};

/// The parameter groups per-term gradient norms are reported on, in this order.
inline constexpr const char* kGradNormGroups[] = {"trunk", "router", "gate"};

/// The figures of one step, device tensors (float32 unless noted), averaged over micro-batches.
/// With several processes the routing figures are those of the whole global batch, as one process
/// would measure them: E[k] averaged over processes, dropped pairs and tokens per expert summed.
struct TrainStepResult {
  torch::Tensor lm_loss;                                   // ()
  std::map<std::string, torch::Tensor> aux_losses;         // () each, coefficients applied
  torch::Tensor grad_norm;                                 // () before clipping
  torch::Tensor active_experts_L;                          // (L) measured E[k] per layer
  torch::Tensor dropped_L;                                 // (L) dropped pairs, summed over micro-batches
  std::vector<torch::Tensor> tokens_per_expert_L;          // L × (E), summed over micro-batches
  std::vector<std::map<std::string, torch::Tensor>> router_metrics_L;  // L × the router's metrics
  /// With options.grad_norm_terms: per loss term ("lm_loss", then each aux name), the L2 norm of that
  /// term's gradient alone on the first micro-batch, before any reduction over processes or clipping,
  /// over the groups of kGradNormGroups: (3) = [trunk (every parameter outside the routers), router
  /// (every router parameter), gate (the gate weights: Switch/ReMoE/SparseMixer's W, DirMoE's W_ℓ and b)].
  std::map<std::string, torch::Tensor> grad_norm_terms;
};

/// Runs step `step_index` (0-based). `params` are the trainable parameters (gradients averaged
/// over `dist`'s ranks and clipped); with W > 1 ranks every rank draws the global batch of W·B
/// windows and keeps its own rows. Each micro-batch's router noise is keyed by (options.seed,
/// step·grad_accum + micro-batch, the global index of this rank's first token), so that it does not
/// depend on W. The routers' controller measurements are averaged over ranks before their update.
/// The model's routing sink, if any, sees the forwards.
TrainStepResult train_step(int64_t step_index, TrainableModel& model, torch::optim::Optimizer& optimizer,
                           const std::vector<torch::Tensor>& params, BatchSource& source, DistributedContext& dist,
                           const TrainStepOptions& options);

}  // namespace dirmoe
