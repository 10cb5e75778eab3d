#pragma once
// One pre-norm LLaMA decoder block: h = x + Attention(RMSNorm(x)); y = h + MoE(RMSNorm(h)).
#include <cstdint>
#include <memory>

#include <torch/nn/module.h>
#include <torch/nn/pimpl.h>
#include <torch/types.h>

#include "dirmoe/config/config.h"
#include "dirmoe/model/attention.h"
#include "dirmoe/model/moe_layer.h"
#include "dirmoe/model/rms_norm.h"

namespace dirmoe {

struct DecoderBlockOutput {
  torch::Tensor y_BTD;
  std::map<std::string, torch::Tensor> aux_losses;
  LayerRoutingMetrics metrics;
};

class DecoderBlockImpl : public torch::nn::Module {
 public:
  DecoderBlockImpl(const Config& config, int64_t layer_index, std::shared_ptr<RouterImpl> router);
  DecoderBlockOutput forward(const torch::Tensor& x_BTD, RoutingStatsSink* sink = nullptr);

  RmsNorm attn_norm{nullptr};
  Attention attention{nullptr};
  RmsNorm ffn_norm{nullptr};
  MoeLayer moe{nullptr};
};
TORCH_MODULE(DecoderBlock);

}  // namespace dirmoe
