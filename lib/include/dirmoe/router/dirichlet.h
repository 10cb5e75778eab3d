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
/// `dsample_dalpha`, when defined, is gamma_sample_grad(α, draws) computed by the caller: a router
/// that reparameterises the same α and draws twice (DirMoE's LM and loss paths) evaluates it once.
torch::Tensor gamma_reparam(const torch::Tensor& alpha, const torch::Tensor& draws = {},
                            const torch::Tensor& dsample_dalpha = {});

/// dγ/dα at the samples γ of Gamma(α, 1) (at::_standard_gamma_grad), not differentiable. On CUDA in
/// float64: CUDA's kernel accumulates in the input's type, and in float32 its series and asymptotic
/// branches lose digits away from the mode (CUDA's DirMoE gradients then differed from the CPU's by
/// up to 28% relative L2, tests/gpu/test_gpu_routers.cpp on an H200). The CPU kernel accumulates
/// in double whatever the input type, so there float32 in and out gives the same bits as float64.
torch::Tensor gamma_sample_grad(const torch::Tensor& alpha, const torch::Tensor& sample);

/// θ ~ Dir(α) along the last dimension as normalised Gamma draws, θ = γ/Σγ, differentiable in α;
/// `draws` and `dsample_dalpha` as in gamma_reparam.
torch::Tensor dirichlet_reparam(const torch::Tensor& alpha, const torch::Tensor& draws = {},
                                const torch::Tensor& dsample_dalpha = {});

/// KL(Dir(α_q) ‖ Dir(α_p)) along the last dimension (closed form):
///   lnΓ(α_q0) − Σ lnΓ(α_q,i) − lnΓ(α_p0) + Σ lnΓ(α_p,i) + Σ (α_q,i − α_p,i)(ψ(α_q,i) − ψ(α_q0)).
/// Returns the leading shape (α without its last dimension). Differentiable in both arguments: in
/// float32/float64 with equal shapes on one device where element_passes_on(device) (element_kernels.h),
/// as one node with the closed-form gradient (src/router/dirichlet_kl.cpp; no double backward),
/// elsewhere as operators through autograd.
torch::Tensor dirichlet_kl(const torch::Tensor& alpha_q, const torch::Tensor& alpha_p);

/// KL(Bern(q) ‖ Bern(π)) elementwise with q = σ(logits), computed from log-sigmoids so that
/// saturated logits stay finite. DirMoE passes the tempered gate logits ℓ/τ_z. π in (0, 1).
torch::Tensor bernoulli_kl(const torch::Tensor& logits, double prior_pi);

}  // namespace dirmoe
