#pragma once
// DirMoE router (arXiv 2602.09001 §3–5; DESIGN.md "DirMoE"): spike-and-slab routing on the simplex.
// Selection z̃ (Binary Concrete, straight-through hard dispatch) and contribution θ ~ Dir(α^q)
// (normalised Gamma draws, implicit reparameterisation) are separate decisions; the weights are
// r = normalize(z ⊙ θ) over the dispatched experts. Registered as router type "dirmoe".
#include <cstdint>

#include <torch/nn/modules/linear.h>

#include "dirmoe/router/dirmoe_schedule.h"
#include "dirmoe/router/router.h"

namespace dirmoe {

/// The router module. Per layer it owns the gate ℓ = x·W_ℓ + b, the α heads (a SiLU MLP with
/// alpha_hidden units feeding α_lo and α_hi) and the linear decoder E→D of the reconstruction term.
///
/// Forward, for x_TD:
///   ℓ = gate(x);  z̃ = σ((ℓ + g)/τ_z), g = log u − log(1−u) (training), g = 0 (eval)
///   α_lo = a_lo(t) + softplus(·) + ε,  α_hi = α_lo + softplus(·) + ε
///   hard: dispatch ℓ+g > 0 (⇔ z̃ > 0.5), empty rows keep argmax(ℓ+g); z = mask + z̃ − sg(z̃)
///   soft: every expert dispatched, z = z̃
///   α^q = λ^q·(z̃·α_hi + (1−z̃)·α_lo);  θ = Gamma(α^q)/Σ (training), α^q/Σα^q (eval)
///   r = normalize(z ⊙ θ̃), θ̃ = (1−ε_mix)·θ + ε_mix/E (see DirmoeRouterConfig::theta_mix)
/// Losses (token means, scaled): dirmoe_recon = Σ_d (x_d − dec(r)_d)²/(2σ²) (Gaussian NLL up to a
/// constant, target x detached); dirmoe_kl_dir = β_θ·KL(Dir(α^q) ‖ Dir(α^p)),
/// α^p = λ^p·(z̃·a_hi + (1−z̃)·a_lo); dirmoe_sparsity = λ_s·(Σz̃ − k)²;
/// dirmoe_kl_bern = β_z·Σ_i KL(Bern(σ(ℓ_i/τ)) ‖ Bern(π)) (only present when β_z > 0).
class DirmoeRouterImpl : public RouterImpl {
 public:
  explicit DirmoeRouterImpl(const Config& config);

  RouterOutput forward(const torch::Tensor& x_TD, const RouterNoise& noise = {}) override;
  void set_step(int64_t step) override;
  std::string name() const override { return "dirmoe"; }

  /// The schedule values forward() uses now.
  const DirmoeScheduleValues& schedule() const { return schedule_; }

  torch::nn::Linear gate{nullptr};          // D → E, with bias
  torch::nn::Linear alpha_hidden{nullptr};  // D → H
  torch::nn::Linear alpha_lo{nullptr};      // H → E
  torch::nn::Linear alpha_hi{nullptr};      // H → E
  torch::nn::Linear decoder{nullptr};       // E → D, reconstruction of the router input

 private:
  DirmoeRouterConfig cfg_;
  int64_t n_experts_;
  int64_t k_;
  double prior_pi_;
  DirmoeScheduleValues schedule_;
};

}  // namespace dirmoe
