#pragma once
// DirMoE's training-time routing chain as one autograd node with a hand-written backward: from the
// router input x through the gate and the α MLP (one GEMM for both, or the α MLP's in bf16), the α heads, the Binary
// Concrete selection, the posterior α^q, the Dirichlet draw and the uniform mix to the routing
// weights r = normalize(z̃ ⊙ θ̃) over all E (arXiv 2602.09001 §3–4; the formulas of dirmoe_router.h,
// whose operator-by-operator path runs where this node does not apply).
//
// Why a node of its own: written as operators, this chain is about 30 operators on [T, E] tensors
// forward and twice as many backward, and with aux_detach_input the losses' path ran all of it a
// second time on the same values (same products, noise and Gamma draws), only to keep its gradient
// off the router input. Here the forward runs once and feeds both paths' outputs; the backward
// applies the chain's Jacobian to the sum of both paths' gradients (the parameters' gradients) and,
// when the losses must not reach x, to the LM path's alone (x's gradient). The element-wise parts run
// as passes over tokens (one forward before and one after the Gamma draw, one backward;
// routing_chain_element.h): on the CPU's intra-op threads, and on CUDA as one kernel each, one thread
// per token, where the build has dirmoe's CUDA kernels; elsewhere as tensor operators.
// bench/README.md has the profiles.
#include <cstdint>
#include <functional>
#include <utility>

#include <torch/types.h>

namespace dirmoe {

/// The constants of one forward: the schedule's values and the router's configuration.
struct DirmoeChainConstants {
  bool center_logits = true;       // ℓ = W·x − mean_e W·x + b (else W·x + b)
  double tau = 1.0;                // τ_z(t), Binary Concrete temperature
  double lambda_q = 1.0;           // λ^q
  double alpha_lo_offset = 0;      // a_lo(t) + ε: α_lo = softplus(·) + a_lo(t) + ε
  double alpha_eps = 0;            // ε: α_hi = α_lo + softplus(·) + ε
  double theta_mix = 0;            // θ̃ = (1 − theta_mix)·θ + theta_mix/E
  bool losses_reach_input = false; // false (aux_detach_input): x gets the LM path's gradient only
  bool element_loops = true;       // the element-wise parts as per-token passes (CPU loops, CUDA kernels) where
                                   // element_passes_on(device) (element_kernels.h; false: tensor operators)
  // the α MLP's hidden-layer GEMM W_h·x with bf16 operands and result (float32 accumulation), forward and
  // backward, as autocast runs a linear layer; the gate's product, the bias and everything after in x's
  // dtype (false: the gate and the hidden layer as one GEMM in x's dtype)
  bool alpha_mlp_bf16 = false;
};

/// The router parameters the chain reads.
struct DirmoeChainParameters {
  torch::Tensor gate_weight_ED, gate_bias_E;      // ℓ
  torch::Tensor hidden_weight_HD, hidden_bias_H;  // the α MLP's SiLU layer
  torch::Tensor lo_weight_EH, lo_bias_E;          // α_lo head
  torch::Tensor hi_weight_EH, hi_bias_E;          // α_hi head
};

/// γ ~ Gamma(α^q, 1) and dγ/dα^q at those draws, for α^q [T, E] given without a gradient.
using GammaDrawFunction = std::function<std::pair<torch::Tensor, torch::Tensor>(const torch::Tensor& alpha_q_TE)>;

struct DirmoeChainOutput {
  torch::Tensor scores_TE;   // ℓ + g, the selection's scores; not differentiable
  torch::Tensor r_lm_TE;     // r, the LM path's routing weights over all E (before the dispatch mask)
  // the losses' path: the same values; their gradient reaches x only with losses_reach_input
  torch::Tensor logits_TE;   // ℓ
  torch::Tensor z_soft_TE;   // z̃ = σ((ℓ + g)/τ)
  torch::Tensor alpha_q_TE;  // α^q = λ^q·(z̃·α_hi + (1 − z̃)·α_lo)
  torch::Tensor r_TE;        // r
};

/// Runs the chain on x_TD with the Logistic noise g = noise_TE [T, E] and the Gamma draws of
/// `draw`. x and the parameters must share one device and be float32 or float64.
DirmoeChainOutput dirmoe_routing_chain(const torch::Tensor& x_TD, const DirmoeChainParameters& parameters,
                                       const torch::Tensor& noise_TE, const GammaDrawFunction& draw,
                                       const DirmoeChainConstants& constants);

}  // namespace dirmoe
