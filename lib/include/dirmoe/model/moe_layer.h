#pragma once
// Mixture-of-Experts feed-forward layer (DESIGN.md "Model"): route → dispatch → experts → combine.
//   route:    the router gives a dense dispatch mask (T, E) and combine weights (T, E);
//   dispatch: the (token, expert) pairs of the mask sorted by expert (token order inside each
//             expert), tokens_per_expert_E; with a capacity factor cf > 0 each expert keeps its first
//             C = ceil(cf·T·k/E) tokens and the overflow pairs are dropped (counted);
//   experts:  E SwiGLU experts over the sorted rows (grouped GEMM on CUDA, one fused autograd node
//             over per-expert GEMMs on the CPU); with expert parallelism the rows first travel to
//             the processes holding their experts and back (expert_parallel_dispatch.h);
//   combine:  y_t = Σ_{(t,e) dispatched} weights_TE[t,e]·E_e(x_t)  (weighted scatter-add).
#include <cstdint>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include <torch/nn/module.h>
#include <torch/nn/pimpl.h>
#include <torch/types.h>

#include "dirmoe/config/config.h"
#include "dirmoe/model/expert_parallel_dispatch.h"
#include "dirmoe/model/swiglu_experts.h"
#include "dirmoe/router/router.h"

namespace dirmoe {

class RoutingStatsSink;

/// Per-layer routing figures of one forward (detached scalars unless noted).
struct LayerRoutingMetrics {
  torch::Tensor active_experts;       // mean experts computed per token (E[k] measured)
  torch::Tensor tokens_per_expert_E;  // (E) int64, tokens dispatched to each expert
  torch::Tensor dropped_tokens;       // tokens dropped by the capacity factor (0 when dropless)
  std::map<std::string, torch::Tensor> router_metrics;  // the router's own named metrics
};

/// The dispatch of T tokens to E experts. N = number of dispatched (token, expert) pairs.
struct DispatchPlan {
  torch::Tensor token_N;              // (N) int64, sorted by expert, then by token
  torch::Tensor expert_N;             // (N) int64, non-decreasing
  torch::Tensor tokens_per_expert_E;  // (E) int64, pairs kept per expert (sums to N)
  torch::Tensor dropped_tokens;       // () int64, (token, expert) pairs over capacity
};

/// Per-expert capacity ceil(cf·T·k/E); 0 (no limit) when capacity_factor ≤ 0.
int64_t expert_capacity(double capacity_factor, int64_t n_tokens, int64_t n_active, int64_t n_experts);

/// Sorts the pairs of dispatch_mask_TE (bool) by expert; capacity > 0 keeps each expert's first
/// `capacity` tokens in token order and counts the rest as dropped.
DispatchPlan plan_dispatch(const torch::Tensor& dispatch_mask_TE, int64_t capacity);

struct MoeLayerOutput {
  torch::Tensor y_TD;                              // (T, D), the input's dtype
  std::map<std::string, torch::Tensor> aux_losses;  // the router's, coefficients applied
  LayerRoutingMetrics metrics;
};

class MoeLayerImpl : public torch::nn::Module {
 public:
  /// `layer_index` names this layer to the statistics sink.
  MoeLayerImpl(const Config& config, int64_t layer_index, std::shared_ptr<RouterImpl> router);

  /// x_TD: (T, D) flattened tokens. `sink` (optional) receives the detached mask and weights.
  MoeLayerOutput forward(const torch::Tensor& x_TD, RoutingStatsSink* sink = nullptr);

  /// Keys the router noise of the following forwards (training): `key` with this layer's index.
  void set_noise_key(const RouterNoiseKey& key);
  /// Expert parallelism: keeps this process's E/N experts (the exchange's rank r holds experts
  /// [r·E/N, (r+1)·E/N)) and sends the dispatched rows through `exchange` from now on. Returns the
  /// expert parameters, now holding only their shard.
  std::vector<torch::Tensor> shard_experts(std::shared_ptr<ExpertExchange> exchange);
  /// The expert-parallel dispatch, or null when this process holds every expert.
  const ExpertParallelDispatch* expert_parallel() const { return expert_parallel_.get(); }

  RouterImpl& router() { return *router_; }
  const RouterImpl& router() const { return *router_; }
  const SwigluExperts& experts() const { return experts_; }
  SwigluExperts& experts() { return experts_; }
  int64_t layer_index() const { return layer_index_; }

 private:
  std::shared_ptr<RouterImpl> router_;
  SwigluExperts experts_{nullptr};
  int64_t layer_index_;
  int64_t n_experts_;
  int64_t n_active_;
  double capacity_factor_;
  std::optional<RouterNoiseKey> noise_key_;
  std::unique_ptr<ExpertParallelDispatch> expert_parallel_;
};
TORCH_MODULE(MoeLayer);

}  // namespace dirmoe
