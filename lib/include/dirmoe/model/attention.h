#pragma once
// Grouped-query causal self-attention (Ainslie et al. 2023, GQA) with rotary embeddings on q and k:
//   q = x·W_qᵀ (H heads), k = x·W_kᵀ, v = x·W_vᵀ (H_kv heads), q,k ← RoPE(q,k),
//   o_h = softmax(q_h·k_g(h)ᵀ/√d_head + causal mask)·v_g(h),  g(h) = h / (H/H_kv),
//   y = concat_h(o_h)·W_oᵀ.
// Runs through torch::scaled_dot_product_attention(is_causal, enable_gqa). No biases.
#include <cstdint>

#include <torch/nn/module.h>
#include <torch/nn/pimpl.h>
#include <torch/types.h>

#include "dirmoe/config/config.h"

namespace dirmoe {

class AttentionImpl : public torch::nn::Module {
 public:
  /// Weights drawn from N(0, init_std²).
  explicit AttentionImpl(const ModelConfig& config);
  /// x_BTD: (B, T, D) → (B, T, D).
  torch::Tensor forward(const torch::Tensor& x_BTD);

  torch::Tensor wq;  // (H·d_head, D)
  torch::Tensor wk;  // (H_kv·d_head, D)
  torch::Tensor wv;  // (H_kv·d_head, D)
  torch::Tensor wo;  // (D, H·d_head)

 private:
  int64_t n_heads_;
  int64_t n_kv_heads_;
  int64_t d_head_;
  double rope_theta_;
};
TORCH_MODULE(Attention);

}  // namespace dirmoe
