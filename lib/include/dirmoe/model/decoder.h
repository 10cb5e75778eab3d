#pragma once
// LLaMA-style decoder with a MoE feed-forward in every layer (DESIGN.md "Model"): token
// embedding → n_layers × [RMSNorm → GQA attention (RoPE, causal SDPA) → residual → RMSNorm →
// MoE(SwiGLU experts) → residual] → RMSNorm → untied output head. No biases; every matrix
// initialised N(0, init_std²).
#include <cstdint>
#include <map>
#include <string>
#include <vector>

#include <torch/nn/module.h>
#include <torch/nn/pimpl.h>
#include <torch/types.h>

#include "dirmoe/config/config.h"

namespace dirmoe {

class RoutingStatsSink;

/// Per-layer routing figures of one forward (detached scalars unless noted).
struct LayerRoutingMetrics {
  torch::Tensor active_experts;       // mean experts computed per token (E[k] measured)
  torch::Tensor tokens_per_expert_E;  // (E) int64, tokens dispatched to each expert
  torch::Tensor dropped_tokens;       // tokens dropped by the capacity factor (0 when dropless)
  std::map<std::string, torch::Tensor> router_metrics;  // the router's own named metrics
};

struct DecoderOutput {
  torch::Tensor logits_BTV;  // (B, T, V) float32
  /// Router auxiliary losses by name (coefficients applied), averaged over layers; add their sum
  /// to the LM loss.
  std::map<std::string, torch::Tensor> aux_losses;
  std::vector<LayerRoutingMetrics> layers;  // one entry per layer
};

/// Parameter counts by component, for compute parity and reports.
struct ParameterCounts {
  int64_t embedding = 0;  // token embedding
  int64_t attention = 0;  // q/k/v/o projections of all layers
  int64_t experts = 0;    // all experts of all layers
  int64_t router = 0;     // router parameters (gates, α heads, decoders)
  int64_t norms = 0;
  int64_t head = 0;       // output projection
  int64_t total() const { return embedding + attention + experts + router + norms + head; }
  /// Parameters a token touches with k active experts per layer (excluding the embedding lookup).
  int64_t active(double active_experts, int64_t n_experts) const;
};

class DecoderImpl : public torch::nn::Module {
 public:
  /// config.model.vocab_size must be > 0 (resolved from the data manifest by the caller).
  explicit DecoderImpl(const Config& config);

  /// tokens_BT: (B, T) int64 with T ≤ seq_len. `sink` (optional) receives each layer's routing.
  DecoderOutput forward(const torch::Tensor& tokens_BT, RoutingStatsSink* sink = nullptr);

  /// Steps every router's schedules to training step t (DirMoE τ_z, a_lo, λ^p).
  void set_step(int64_t step);
  /// Updates every router's controller after an optimiser step (ReMoE λ).
  void update_controllers();

  ParameterCounts parameter_counts() const;
  const Config& config() const { return config_; }

 private:
  Config config_;
  // members defined in decoder.cpp's implementation
  struct Layers;
  std::shared_ptr<Layers> layers_;
};
TORCH_MODULE(Decoder);

}  // namespace dirmoe
