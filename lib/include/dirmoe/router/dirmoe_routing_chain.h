#pragma once
// DirMoE's training-time routing chain as one autograd node with a hand-written backward: from the
// router's input products (the gate and the α MLP's hidden layer, shared_input_linear.h) through the
// α heads, the Binary Concrete selection, the posterior α^q, the Dirichlet draw and the uniform mix
// to the routing weights r = normalize(z̃ ⊙ θ̃) over all E (arXiv 2602.09001 §3–4; the formulas of
// dirmoe_router.h, which also runs them as separate operators where this node does not apply).
//
// Why a node of its own: written as operators, this chain is about 30 operators on [T, E] tensors
// forward and as many backward, and with aux_detach_input the losses' path ran all of it a second time
// on the same values (same products, noise and Gamma draws), only to keep its gradient off the router
// input. Here the forward runs once and feeds both paths' outputs; the backward applies the chain's
// Jacobian to each path's gradient and returns one gradient per product (bench/README.md has the
// profile before and after).
#include <cstdint>
#include <functional>
#include <utility>

#include <torch/types.h>

namespace dirmoe {

/// The constants of one forward: the schedule's values and the router's configuration.
struct DirmoeChainConstants {
  int64_t n_experts = 0;       // E: the products' first E columns are the gate's, the rest the α hidden layer's
  bool center_logits = true;   // ℓ = W·x − mean_e W·x + b (else W·x + b)
  double tau = 1.0;            // τ_z(t), Binary Concrete temperature
  double lambda_q = 1.0;       // λ^q
  double alpha_lo_offset = 0;  // a_lo(t) + ε: α_lo = softplus(·) + a_lo(t) + ε
  double alpha_eps = 0;        // ε: α_hi = α_lo + softplus(·) + ε
  double theta_mix = 0;        // θ̃ = (1 − theta_mix)·θ + theta_mix/E
};

/// The router parameters the chain reads (the gate's and the α hidden layer's weights are inside the products).
struct DirmoeChainParameters {
  torch::Tensor gate_bias_E;
  torch::Tensor hidden_bias_H;
  torch::Tensor lo_weight_EH, lo_bias_E;  // α_lo head
  torch::Tensor hi_weight_EH, hi_bias_E;  // α_hi head
};

/// γ ~ Gamma(α^q, 1) and dγ/dα^q at those draws, for α^q [T, E] given without a gradient.
using GammaDrawFunction = std::function<std::pair<torch::Tensor, torch::Tensor>(const torch::Tensor& alpha_q_TE)>;

struct DirmoeChainOutput {
  torch::Tensor scores_TE;   // ℓ + g, the selection's scores; not differentiable
  torch::Tensor r_lm_TE;     // r, the LM path's routing weights over all E (before the dispatch mask)
  // the losses' path: the same values, their gradient returned through product_loss_TO
  torch::Tensor logits_TE;   // ℓ
  torch::Tensor z_soft_TE;   // z̃ = σ((ℓ + g)/τ)
  torch::Tensor alpha_q_TE;  // α^q = λ^q·(z̃·α_hi + (1 − z̃)·α_lo)
  torch::Tensor r_TE;        // r
};

/// Runs the chain on product_lm_TO [T, E + H] (x·[W_gate; W_hidden]ᵀ, without biases) with the
/// Logistic noise g = noise_TE [T, E] and the Gamma draws of `draw`. product_loss_TO is the losses'
/// copy of the same product (shared_input_linear's second output), or product_lm_TO itself when the
/// losses' gradient should reach the router input too: the LM path's outputs send their gradient to
/// the first, the losses' path's outputs to the second. The products and parameters must be float32
/// or float64, on one device.
DirmoeChainOutput dirmoe_routing_chain(const torch::Tensor& product_lm_TO, const torch::Tensor& product_loss_TO,
                                       const DirmoeChainParameters& parameters, const torch::Tensor& noise_TE,
                                       const GammaDrawFunction& draw, const DirmoeChainConstants& constants);

}  // namespace dirmoe
