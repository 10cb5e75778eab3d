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
#include "dirmoe/model/decoder_block.h"
#include "dirmoe/model/moe_layer.h"  // LayerRoutingMetrics
#include "dirmoe/model/rms_norm.h"
#include "dirmoe/router/router_registry.h"

namespace dirmoe {

class RoutingStatsSink;

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
  /// config.model.vocab_size must be > 0 (resolved from the data manifest by the caller). Each
  /// layer gets its own router from `router_factory` (the registry's make_router by default; tests
  /// inject their own).
  explicit DecoderImpl(const Config& config, const RouterFactory& router_factory = make_router);

  /// tokens_BT: (B, T) int64 with T ≤ seq_len. `sink` (optional) receives each layer's routing.
  DecoderOutput forward(const torch::Tensor& tokens_BT, RoutingStatsSink* sink = nullptr);

  /// Steps every router's schedules to training step t (DirMoE τ_z, a_lo, λ^p).
  void set_step(int64_t step);
  /// Updates every router's controller after an optimiser step (ReMoE λ).
  void update_controllers();
  /// Batch-level router losses over the global batch (batch_mean.h): every router gets `reducer`.
  void set_batch_mean_reducer(const std::shared_ptr<BatchMeanReducer>& reducer);
  /// Keys the router noise of the following training forwards (each layer adds its index).
  void set_noise_key(const RouterNoiseKey& key);
  /// Expert parallelism: every layer keeps this process's E/N experts and exchanges rows through
  /// `exchange` (MoeLayerImpl::shard_experts). Returns every sharded parameter, layer 0 first.
  std::vector<torch::Tensor> shard_experts(const std::shared_ptr<ExpertExchange>& exchange);

  ParameterCounts parameter_counts() const;
  const Config& config() const { return config_; }
  /// The decoder blocks, layer 0 first (for analysis tools that reach into routers or experts).
  const std::vector<DecoderBlock>& blocks() const { return blocks_; }

  torch::Tensor tok_embedding;  // (V, D)
  torch::Tensor head;           // (V, D), untied from tok_embedding

 private:
  Config config_;
  std::vector<DecoderBlock> blocks_;  // registered under the submodule "layers" as "<i>"
  RmsNorm final_norm_{nullptr};
};
TORCH_MODULE(Decoder);

}  // namespace dirmoe
