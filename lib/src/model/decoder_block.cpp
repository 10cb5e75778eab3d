#include "dirmoe/model/decoder_block.h"

#include <torch/torch.h>

namespace dirmoe {

DecoderBlockImpl::DecoderBlockImpl(const Config& config, int64_t layer_index, std::shared_ptr<RouterImpl> router) {
  attn_norm = register_module("attn_norm", RmsNorm(config.model.d_model, config.model.norm_eps));
  attention = register_module("attention", Attention(config.model));
  ffn_norm = register_module("ffn_norm", RmsNorm(config.model.d_model, config.model.norm_eps));
  moe = register_module("moe", MoeLayer(config, layer_index, std::move(router)));
}

DecoderBlockOutput DecoderBlockImpl::forward(const torch::Tensor& x_BTD, RoutingStatsSink* sink) {
  const torch::Tensor h_BTD = x_BTD + attention->forward(attn_norm->forward(x_BTD));
  const int64_t D = h_BTD.size(-1);
  MoeLayerOutput moe_out = moe->forward(ffn_norm->forward(h_BTD).reshape({-1, D}), sink);
  DecoderBlockOutput out;
  out.y_BTD = h_BTD + moe_out.y_TD.view(h_BTD.sizes());
  out.aux_losses = std::move(moe_out.aux_losses);
  out.metrics = std::move(moe_out.metrics);
  return out;
}

}  // namespace dirmoe
