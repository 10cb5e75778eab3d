#pragma once
// Training FLOPs per token of the decoder, for compute parity between routers and for MFU.
//
// Forward matmul FLOPs per token (2 FLOPs per multiply-add; D = d_model, H = n_heads,
// G = n_kv_heads, d = D/H, F = d_ff, V = vocab, S = sequence length, k_l = measured mean active
// experts of layer l, R_l = router forward FLOPs of layer l):
//   attention projections  A_proj  = 2·D·(H·d) + 2·2·D·(G·d) + 2·(H·d)·D        (q, k and v, o)
//   attention scores       A_score = 2·2·H·d·S                                  (QKᵀ and A·V)
//   experts (layer l)      X_l     = k_l · 3 · 2·D·F                            (gate, up, down)
//   output head            O       = 2·D·V
//   forward                F_fwd   = Σ_l (A_proj + A_score + X_l + R_l) + O
//   training               F_train = 3·F_fwd        (backward = 2× forward: input and weight grads)
// Norms, activations, softmax, the embedding lookup and the scatter/gather of dispatch are not
// counted (elementwise, O(D) per token). NOTE: A_score counts the full context S for every token,
// as PaLM's MFU does (Chowdhery et al. 2022, App. B: 6N + 12·L·H·d·S), not the causal half.
#include <cstdint>
#include <vector>

#include "dirmoe/config/config.h"

namespace dirmoe {

/// Forward FLOPs per token by component (summed over layers), and the training total.
struct FlopsPerToken {
  double attention_projections = 0;
  double attention_scores = 0;
  double experts = 0;
  double router = 0;
  double head = 0;
  double forward() const { return attention_projections + attention_scores + experts + router + head; }
  double training() const { return 3.0 * forward(); }
};

/// `active_experts_per_layer` (n_layers entries) are the measured E[k]; `router_forward_flops_per_layer`
/// the router's own forward FLOPs per token in one layer (see router_forward_flops). `seq_len` is the
/// context S (≤ 0: model.seq_len).
FlopsPerToken flops_per_token(const ModelConfig& model, const std::vector<double>& active_experts_per_layer,
                              double router_forward_flops_per_layer, int64_t seq_len = 0);

/// Forward FLOPs per token of a router whose parameters are all matrices applied once to each token
/// (a linear gate, DirMoE's α heads and reconstruction decoder): 2 FLOPs per parameter.
double router_forward_flops(int64_t router_parameters_per_layer);

}  // namespace dirmoe
