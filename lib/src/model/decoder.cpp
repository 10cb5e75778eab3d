#include "dirmoe/model/decoder.h"

#include <cmath>

#include <torch/torch.h>

#include "dirmoe/core/error.h"

namespace dirmoe {
namespace {
int64_t count(const std::vector<torch::Tensor>& tensors) {
  int64_t n = 0;
  for (const auto& t : tensors) n += t.numel();
  return n;
}
}  // namespace

int64_t ParameterCounts::active(double active_experts, int64_t n_experts) const {
  TORCH_CHECK(n_experts > 0, "ParameterCounts::active needs n_experts > 0");
  const double expert_share = static_cast<double>(experts) * active_experts / static_cast<double>(n_experts);
  return attention + router + norms + head + static_cast<int64_t>(std::llround(expert_share));
}

DecoderImpl::DecoderImpl(const Config& config, const RouterFactory& router_factory) : config_(config) {
  const ModelConfig& m = config_.model;
  if (m.vocab_size <= 0) {
    throw ConfigError("model.vocab_size must be set (> 0) before building the decoder; it normally comes from "
                      "the data manifest's tokenizer");
  }
  tok_embedding = register_parameter("tok_embedding", torch::randn({m.vocab_size, m.d_model}) * m.init_std);
  // Blocks live under a plain container module so their parameters are named "layers.<i>.…".
  auto layers = register_module("layers", std::make_shared<torch::nn::Module>("Layers"));
  for (int64_t i = 0; i < m.n_layers; ++i) {
    blocks_.push_back(layers->register_module(std::to_string(i), DecoderBlock(config_, i, router_factory(config_))));
  }
  final_norm_ = register_module("final_norm", RmsNorm(m.d_model, m.norm_eps));
  head = register_parameter("head", torch::randn({m.vocab_size, m.d_model}) * m.init_std);
}

DecoderOutput DecoderImpl::forward(const torch::Tensor& tokens_BT, RoutingStatsSink* sink) {
  TORCH_CHECK(tokens_BT.dim() == 2 && tokens_BT.scalar_type() == torch::kInt64, "decoder: tokens must be (B, T) int64");
  TORCH_CHECK(tokens_BT.size(1) <= config_.model.seq_len, "decoder: sequence length ", tokens_BT.size(1),
              " exceeds model.seq_len ", config_.model.seq_len);
  torch::Tensor x_BTD = torch::embedding(tok_embedding, tokens_BT);
  DecoderOutput out;
  std::map<std::string, int64_t> reported;
  for (auto& block : blocks_) {
    DecoderBlockOutput block_out = block->forward(x_BTD, sink);
    x_BTD = block_out.y_BTD;
    for (auto& [name, loss] : block_out.aux_losses) {
      auto it = out.aux_losses.find(name);
      if (it == out.aux_losses.end()) {
        out.aux_losses.emplace(name, loss);
      } else {
        it->second = it->second + loss;
      }
      ++reported[name];
    }
    out.layers.push_back(std::move(block_out.metrics));
  }
  for (auto& [name, total] : out.aux_losses) total = total / static_cast<double>(reported[name]);
  torch::Tensor logits_BTV = torch::nn::functional::linear(final_norm_->forward(x_BTD), head);
  if (logits_BTV.scalar_type() == torch::kBFloat16 || logits_BTV.scalar_type() == torch::kHalf) {
    logits_BTV = logits_BTV.to(torch::kFloat32);
  }
  out.logits_BTV = logits_BTV;
  return out;
}

void DecoderImpl::set_step(int64_t step) {
  for (auto& block : blocks_) block->moe->router().set_step(step);
}

void DecoderImpl::update_controllers() {
  for (auto& block : blocks_) block->moe->router().update_controller();
}

void DecoderImpl::set_batch_mean_reducer(const std::shared_ptr<BatchMeanReducer>& reducer) {
  for (auto& block : blocks_) block->moe->router().set_batch_mean_reducer(reducer);
}

void DecoderImpl::set_noise_key(const RouterNoiseKey& key) {
  for (auto& block : blocks_) block->moe->set_noise_key(key);
}

std::vector<torch::Tensor> DecoderImpl::shard_experts(const std::shared_ptr<ExpertExchange>& exchange) {
  std::vector<torch::Tensor> sharded;
  for (auto& block : blocks_) {
    for (auto& p : block->moe->shard_experts(exchange)) sharded.push_back(p);
  }
  return sharded;
}

ParameterCounts DecoderImpl::parameter_counts() const {
  ParameterCounts counts;
  counts.embedding = tok_embedding.numel();
  counts.head = head.numel();
  counts.norms = count(final_norm_->parameters());
  for (const auto& block : blocks_) {
    counts.attention += count(block->attention->parameters());
    counts.norms += count(block->attn_norm->parameters()) + count(block->ffn_norm->parameters());
    counts.experts += count(block->moe->experts()->parameters());
    counts.router += count(block->moe->router().parameters());
  }
  return counts;
}

}  // namespace dirmoe
