#pragma once
// The router interface shared by Switch/Top-k, ReMoE, SparseMixer-v2 and DirMoE (DESIGN.md
// "Routers"). A router maps tokens to a dispatch decision and combine weights. It knows nothing of
// dispatch, files or logging: auxiliary losses and metrics travel in the result struct.
#include <cstdint>
#include <map>
#include <memory>
#include <optional>
#include <string>

#include <torch/nn/module.h>
#include <torch/types.h>

#include "dirmoe/config/config.h"
#include "dirmoe/router/batch_mean.h"
#include "dirmoe/router/router_noise_source.h"

namespace dirmoe {

/// What every router returns for T tokens and E experts.
///
/// The dispatch decision is dense: `dispatch_mask_TE[t, e]` says whether token t is computed by
/// expert e, and `weights_TE[t, e]` is its combine weight (0 where the mask is false). Dense is
/// cheap for E ≤ 64 and covers fixed-k routers (Switch, SparseMixer) and variable-k routers
/// (ReMoE, DirMoE) with one dispatch path. MoE output: y_t = Σ_{e: mask} weights_TE[t,e]·E_e(x_t).
struct RouterOutput {
  torch::Tensor dispatch_mask_TE;  // (T, E) bool
  torch::Tensor weights_TE;        // (T, E) float, differentiable w.r.t. the router's inputs
  /// Named auxiliary losses, each a scalar tensor ALREADY multiplied by its coefficient; the
  /// trainer adds them (averaged over layers) to the LM loss and logs each name apart.
  std::map<std::string, torch::Tensor> aux_losses;
  /// Named detached scalar metrics, e.g. "active_experts" (mean experts per token),
  /// "empty_selection" (tokens that fell back), "tau", "lambda".
  std::map<std::string, torch::Tensor> metrics;
};

/// Random draws a router would otherwise sample itself. Tests pass them in so that an independent
/// reference (tests/reference/*.py) can compute the same forward and gradients. Undefined tensors
/// mean "sample them": from the counter-based source when `key` is set (training: the trainer keys
/// every forward, router_noise_source.h), else from torch's default generator.
struct RouterNoise {
  torch::Tensor uniform_TE;  // (T, E) U(0,1): Logistic noise (DirMoE), Gumbel/u draws (SparseMixer), jitter
  torch::Tensor gamma_TE;    // (T, E) standard Gamma(α^q) draws for DirMoE, given α^q of the forward
  torch::Tensor extra_TE;    // (T, E) second uniform draw where a router needs one
  // NOTE: fields below were added after the first three; keep new fields at the end.
  torch::Tensor uniform_TD;  // (T, D) U(0,1): multiplicative input jitter x·(1−ε+2ε·u) (topk)
  torch::Tensor uniform_TK;  // (T, k) U(0,1): per-choice draw u of SparseMixer's forward scale
  std::optional<RouterNoiseKey> key;  // what fresh draws are keyed by (seed, draw, layer, global token)
};

/// Base of every router: a torch module with a forward over flattened tokens.
class RouterImpl : public torch::nn::Module {
 public:
  ~RouterImpl() override = default;
  /// x_TD: (T, D) token representations (the MoE layer's input).
  virtual RouterOutput forward(const torch::Tensor& x_TD, const RouterNoise& noise = {}) = 0;
  /// Advances schedules (DirMoE τ_z, a_lo, λ^p) to training step t. Called once per step.
  virtual void set_step(int64_t /*step*/) {}
  /// Controllers updated from the last training forward (ReMoE's λ). Called once per step after
  /// the optimiser step. State that must be checkpointed lives in registered buffers.
  virtual void update_controller() {}
  /// The controller's measurement since the last update_controller() (ReMoE's mean sparsity,
  /// DirMoE's mean selected experts), a scalar; undefined when there is none. With several
  /// processes the trainer replaces it by its mean over them before update_controller(), so that
  /// every process moves the controller as one process over the whole batch would.
  virtual torch::Tensor controller_measurement() const { return {}; }
  virtual void set_controller_measurement(const torch::Tensor& /*mean*/) {}
  /// With the batch split over processes: where the means of batch-level losses meet (batch_mean.h).
  /// Null (the default): this forward's tokens are the whole batch.
  void set_batch_mean_reducer(std::shared_ptr<BatchMeanReducer> reducer) { batch_reducer_ = std::move(reducer); }
  /// Router name as in config ("topk", "remoe", "sparsemixer", "dirmoe").
  virtual std::string name() const = 0;
  /// Whether the step around this forward runs under bf16 autocast. The MoE layer sets it before each
  /// forward, which itself runs with autocast off (moe_layer.cpp), so that a router can keep a part of
  /// its work in bf16 there (DirMoE's router.dirmoe.alpha_mlp_precision = "auto").
  void set_step_under_bf16_autocast(bool value) { step_under_bf16_autocast_ = value; }
  bool step_under_bf16_autocast() const { return step_under_bf16_autocast_; }

 protected:
  /// A mean over this forward's tokens, taken over the global batch (batch_mean.h); the identity in
  /// one process. Routers wrap the means their batch-level losses are made of.
  torch::Tensor global_batch_mean(const torch::Tensor& local) const { return batch_mean(batch_reducer_.get(), local); }
  BatchMeanReducer* batch_reducer() const { return batch_reducer_.get(); }

 private:
  std::shared_ptr<BatchMeanReducer> batch_reducer_;
  bool step_under_bf16_autocast_ = false;
};

/// Builds the router selected by `config.router.type` for a layer of width d_model.
std::shared_ptr<RouterImpl> make_router(const Config& config);

}  // namespace dirmoe
