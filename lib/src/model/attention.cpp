#include "dirmoe/model/attention.h"

#include <torch/torch.h>

#include "dirmoe/model/rotary.h"

namespace dirmoe {

AttentionImpl::AttentionImpl(const ModelConfig& config)
    : n_heads_(config.n_heads),
      n_kv_heads_(config.n_kv_heads),
      d_head_(config.d_model / config.n_heads),
      rope_theta_(config.rope_theta) {
  TORCH_CHECK(config.d_model % config.n_heads == 0 && config.n_heads % config.n_kv_heads == 0,
              "attention: d_model must divide by n_heads and n_heads by n_kv_heads");
  const int64_t d = config.d_model;
  const double s = config.init_std;
  wq = register_parameter("wq", torch::randn({n_heads_ * d_head_, d}) * s);
  wk = register_parameter("wk", torch::randn({n_kv_heads_ * d_head_, d}) * s);
  wv = register_parameter("wv", torch::randn({n_kv_heads_ * d_head_, d}) * s);
  wo = register_parameter("wo", torch::randn({d, n_heads_ * d_head_}) * s);
}

torch::Tensor AttentionImpl::forward(const torch::Tensor& x_BTD) {
  const int64_t B = x_BTD.size(0), T = x_BTD.size(1);
  auto heads = [&](const torch::Tensor& w, int64_t h) {  // (B, T, h·d) → (B, h, T, d)
    return torch::nn::functional::linear(x_BTD, w).view({B, T, h, d_head_}).transpose(1, 2);
  };
  torch::Tensor q_BHTd = heads(wq, n_heads_);
  torch::Tensor k_BGTd = heads(wk, n_kv_heads_);
  const torch::Tensor v_BGTd = heads(wv, n_kv_heads_);
  const auto [cos_Td, sin_Td] = rotary_tables(T, d_head_, rope_theta_, q_BHTd.options());
  q_BHTd = apply_rotary(q_BHTd, cos_Td, sin_Td);
  k_BGTd = apply_rotary(k_BGTd, cos_Td, sin_Td);
  const torch::Tensor o_BHTd = torch::scaled_dot_product_attention(
      q_BHTd, k_BGTd, v_BGTd, /*attn_mask=*/{}, /*dropout_p=*/0.0, /*is_causal=*/true, /*scale=*/std::nullopt,
      /*enable_gqa=*/n_kv_heads_ != n_heads_);
  const torch::Tensor o_BTD = o_BHTd.transpose(1, 2).reshape({B, T, n_heads_ * d_head_});
  return torch::nn::functional::linear(o_BTD, wo);
}

}  // namespace dirmoe
