#pragma once
// DirMoE router (arXiv 2602.09001 §3–5; DESIGN.md "DirMoE"): spike-and-slab routing on the simplex.
// Selection z̃ (Binary Concrete, straight-through hard dispatch) and contribution θ ~ Dir(α^q)
// (normalised Gamma draws, implicit reparameterisation) are separate decisions; the weights are
// r = normalize(z̃ ⊙ θ). Registered as router type "dirmoe".
#include <cstdint>

#include <torch/nn/modules/linear.h>

#include "dirmoe/router/dirmoe_schedule.h"
#include "dirmoe/router/router.h"

namespace dirmoe {

/// The router module. Per layer it owns the gate ℓ = x·W_ℓ + b, the α heads (a SiLU MLP with
/// alpha_hidden units feeding α_lo and α_hi) and the linear decoder E→D of the reconstruction term.
///
/// Forward, for x_TD (docs/dirmoe.md has each step with its provenance):
///   ℓ = gate(x) (center_logits: W·x − mean_e W·x + b);  z̃ = σ((ℓ + g)/τ_z), g = log u − log(1−u)
///   in training, g = 0 at eval
///   α_lo = a_lo(t) + softplus(·) + ε,  α_hi = α_lo + softplus(·) + ε
///   hard: dispatch ℓ+g > 0 (⇔ z̃ > 0.5), empty rows keep argmax(ℓ+g); soft: every expert dispatched
///   α^q = λ^q·(z̃·α_hi + (1−z̃)·α_lo);  θ = Gamma(α^q)/Σ (training), α^q/Σα^q (eval)
///   θ̃ = (1−ε_mix)·θ + ε_mix/E (see DirmoeRouterConfig::theta_mix)
///   weights "all":        r = normalize(z̃ ⊙ θ̃) over all E; a dispatched expert's weight is r_i
///   weights "dispatched": r = normalize(z ⊙ θ̃) over the dispatched experts, z = mask + z̃ − sg(z̃)
/// Losses (token means, scaled): dirmoe_recon = Σ_d (x_d − dec(r)_d)²/(2σ²) (Gaussian NLL up to a
/// constant, target x detached); dirmoe_kl_dir = β_θ·KL(Dir(α^q) ‖ Dir(α^p)),
/// α^p = λ^p·(z̃·a_hi + (1−z̃)·a_lo); dirmoe_sparsity = λ_s·mean_t (Σz̃ − k)² ("token") or
/// λ_s·(mean_t Σz̃ − k)² ("batch") or λ_s·mean_t [Σ_i p_i(1−p_i) + (Σ_i p_i − k)²], p = σ(ℓ), the
/// expectation of (n − k)² for the hard count n under the noise ("expected"); dirmoe_kl_bern = β_z·Σ_i KL(Bern(σ(ℓ_i/τ)) ‖ Bern(π));
/// dirmoe_usage_kl = β_u·Σ_e KL(Bern(mean_t σ(ℓ_te)) ‖ Bern(π)); dirmoe_balance = α·E·Σ_e f_e·P_e.
/// The last three are present only when their coefficients are > 0.
/// In training with weights "all" the chain from x to r (gate, α MLP, selection, α^q, θ, r) runs as one
/// autograd node with a hand-written backward (dirmoe_routing_chain.h); elsewhere (evaluation, other
/// weights, half-precision parameters, no gradients) as operators.
///
/// With sparsity_control > 1, λ_s is the buffer "lambda_sparsity" (checkpointed), moved once per
/// optimiser step by update_controller() from the mean selected experts (before the fallback) of
/// the step's forwards.
class DirmoeRouterImpl : public RouterImpl {
 public:
  explicit DirmoeRouterImpl(const Config& config);

  RouterOutput forward(const torch::Tensor& x_TD, const RouterNoise& noise = {}) override;
  void set_step(int64_t step) override;
  void update_controller() override;
  torch::Tensor controller_measurement() const override;
  void set_controller_measurement(const torch::Tensor& mean) override;
  std::string name() const override { return "dirmoe"; }

  /// The schedule values forward() uses now.
  const DirmoeScheduleValues& schedule() const { return schedule_; }

  torch::nn::Linear gate{nullptr};          // D → E, with bias
  torch::nn::Linear alpha_hidden{nullptr};  // D → H
  torch::nn::Linear alpha_lo{nullptr};      // H → E
  torch::nn::Linear alpha_hi{nullptr};      // H → E
  torch::nn::Linear decoder{nullptr};       // E → D, reconstruction of the router input
  torch::Tensor lambda_sparsity;            // () float64 buffer: the λ_s in use (moves only with sparsity_control)

 private:
  DirmoeRouterConfig cfg_;
  int64_t n_experts_;
  int64_t k_;
  double prior_pi_;
  double recon_variance_;  // σ², resolved (recon_variance or d_model)
  DirmoeScheduleValues schedule_;
  // mean selected experts per token (ℓ + g > 0, before the fallback), summed over the training
  // forwards since update_controller()
  torch::Tensor selected_sum_;
  int64_t n_measured_ = 0;
};

}  // namespace dirmoe
