#pragma once
// Dirichlet and Bernoulli pieces of the DirMoE router (arXiv 2602.09001 §3–4, DESIGN.md "DirMoE"):
// Gamma draws with implicit reparameterisation, normalised into Dirichlet draws, and the closed-form
// KL divergences of its ELBO.
#include <torch/types.h>

namespace dirmoe {

/// γ ~ Gamma(α, 1) elementwise, differentiable in α by implicit reparameterisation
/// (Figurnov et al. 2018): dγ/dα = −(∂F/∂α)/(∂F/∂γ) with F the Gamma CDF, evaluated by
/// at::_standard_gamma_grad. `draws`, when defined, are used as the sample instead of drawing
/// (same shape as α; tests pass draws made elsewhere). Draws are at least the dtype's smallest
/// normal number, never 0.
torch::Tensor gamma_reparam(const torch::Tensor& alpha, const torch::Tensor& draws = {});

/// θ ~ Dir(α) along the last dimension as normalised Gamma draws, θ = γ/Σγ, differentiable in α.
torch::Tensor dirichlet_reparam(const torch::Tensor& alpha, const torch::Tensor& draws = {});

/// KL(Dir(α_q) ‖ Dir(α_p)) along the last dimension (closed form):
///   lnΓ(α_q0) − Σ lnΓ(α_q,i) − lnΓ(α_p0) + Σ lnΓ(α_p,i) + Σ (α_q,i − α_p,i)(ψ(α_q,i) − ψ(α_q0)).
/// Returns the leading shape (α without its last dimension).
torch::Tensor dirichlet_kl(const torch::Tensor& alpha_q, const torch::Tensor& alpha_p);

/// KL(Bern(q) ‖ Bern(π)) elementwise with q = σ(logits), computed from log-sigmoids so that
/// saturated logits stay finite. DirMoE passes the tempered gate logits ℓ/τ_z. π in (0, 1).
torch::Tensor bernoulli_kl(const torch::Tensor& logits, double prior_pi);

}  // namespace dirmoe
