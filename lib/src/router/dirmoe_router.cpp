#include "dirmoe/router/dirmoe_router.h"

#include <algorithm>
#include <cmath>
#include <limits>

#include <ATen/record_function.h>
#include <torch/torch.h>

#include "dirmoe/router/dirichlet.h"
#include "dirmoe/router/dirmoe_routing_chain.h"
#include "dirmoe/router/reconstruction_loss.h"
#include "dirmoe/router/router_registry.h"
#include "dirmoe/router/shared_input_linear.h"

namespace dirmoe {
namespace {

/// A schedule value as a metric on the router's device: the trainer packs every metric into one
/// tensor there before its single copy to the host.
torch::Tensor scalar_metric(double value, const torch::Device& device) {
  return torch::scalar_tensor(value, torch::TensorOptions().dtype(torch::kFloat32).device(device));
}

/// Gate bias so that the Binary Concrete starts near k of E experts: τ_0·logit(k/E). With k = E the
/// logit is infinite; k/E is then capped at 1 − 1/(2E) (every expert is dispatched anyway).
/// With gate_bias_init = "logit" the factor τ_0 is left out: ℓ_i + g_i > 0 then has probability
/// σ(logit(k/E)) = k/E per expert at step 0, whatever the temperature.
double initial_gate_bias(const DirmoeRouterConfig& cfg, int64_t n_experts, int64_t k) {
  const double e = static_cast<double>(n_experts);
  const double p = std::min(static_cast<double>(k) / e, 1.0 - 0.5 / e);
  const double scale = cfg.gate_bias_init == "logit" ? 1.0 : cfg.tau_start;
  return scale * std::log(p / (1.0 - p));
}

/// Σ_e KL(Bern(ρ_e) ‖ Bern(π)) for rates ρ_E in (0, 1).
torch::Tensor rate_kl(const torch::Tensor& rate_E, double prior_pi) {
  const torch::Tensor rho = rate_E.clamp(1e-6, 1.0 - 1e-6);
  return (rho * (torch::log(rho) - std::log(prior_pi)) + (1.0 - rho) * (torch::log1p(-rho) - std::log1p(-prior_pi)))
      .sum();
}

}  // namespace

DirmoeRouterImpl::DirmoeRouterImpl(const Config& config)
    : cfg_(config.router.dirmoe),
      n_experts_(config.model.n_experts),
      k_(config.model.n_experts_active),
      prior_pi_(config.router.dirmoe.prior_pi > 0 ? config.router.dirmoe.prior_pi
                                                  : static_cast<double>(config.model.n_experts_active) /
                                                        static_cast<double>(config.model.n_experts)),
      recon_variance_(config.router.dirmoe.recon_variance > 0 ? config.router.dirmoe.recon_variance
                                                             : static_cast<double>(config.model.d_model)),
      schedule_(dirmoe_schedule(config.router.dirmoe, 0)) {
  const int64_t d = config.model.d_model;
  const int64_t h = cfg_.alpha_hidden;
  const int64_t e = n_experts_;
  // π = k/E is 1 when k = E; keep it inside (0, 1) so the Bernoulli KL stays finite.
  prior_pi_ = std::clamp(prior_pi_, 1e-6, 1.0 - 1e-6);

  gate = register_module("gate", torch::nn::Linear(torch::nn::LinearOptions(d, e).bias(true)));
  alpha_hidden = register_module("alpha_hidden", torch::nn::Linear(torch::nn::LinearOptions(d, h).bias(true)));
  alpha_lo = register_module("alpha_lo", torch::nn::Linear(torch::nn::LinearOptions(h, e).bias(true)));
  alpha_hi = register_module("alpha_hi", torch::nn::Linear(torch::nn::LinearOptions(h, e).bias(true)));
  decoder = register_module("decoder", torch::nn::Linear(torch::nn::LinearOptions(e, d).bias(true)));

  torch::NoGradGuard no_grad;
  const double std_dev = config.model.init_std;
  for (auto* layer : {&gate, &alpha_hidden, &alpha_lo, &alpha_hi, &decoder}) {
    (*layer)->weight.normal_(0.0, std_dev);
    (*layer)->bias.zero_();
  }
  gate->bias.fill_(initial_gate_bias(cfg_, e, k_));
  lambda_sparsity = register_buffer("lambda_sparsity", torch::full({}, cfg_.lambda_sparsity, torch::kFloat64));
}

void DirmoeRouterImpl::set_step(int64_t step) { schedule_ = dirmoe_schedule(cfg_, step); }

void DirmoeRouterImpl::update_controller() {
  if (cfg_.sparsity_control <= 0 || n_measured_ == 0) return;
  torch::NoGradGuard no_grad;
  const torch::Tensor mean_selected = (selected_sum_ / static_cast<double>(n_measured_)).to(lambda_sparsity.device());
  const double f = cfg_.sparsity_control;
  const auto opts = lambda_sparsity.options();
  // Two-sided: too many experts selected → a stronger pull toward k, too few → a weaker one. [ours]
  lambda_sparsity.mul_(torch::where(mean_selected > static_cast<double>(k_), torch::full({}, f, opts),
                                    torch::full({}, 1.0 / f, opts)))
      .clamp_(1e-4, 1e4);
  selected_sum_ = torch::Tensor();
  n_measured_ = 0;
}

torch::Tensor DirmoeRouterImpl::controller_measurement() const {
  if (n_measured_ == 0) return {};
  return selected_sum_ / static_cast<double>(n_measured_);
}

void DirmoeRouterImpl::set_controller_measurement(const torch::Tensor& mean) {
  if (!mean.defined()) return;
  selected_sum_ = mean.detach().reshape({}).to(torch::kFloat64);
  n_measured_ = 1;
}

RouterOutput DirmoeRouterImpl::forward(const torch::Tensor& x_TD, const RouterNoise& noise) {
  TORCH_CHECK(x_TD.dim() == 2, "DirMoE router expects x of shape (T, D), got ", x_TD.sizes());
  RECORD_FUNCTION("dirmoe::dirmoe_router", std::vector<c10::IValue>());
  const int64_t e = n_experts_;
  const double tau = schedule_.tau;
  const double eps = cfg_.alpha_eps;
  // The Dirichlet part runs in at least float32 (Gamma sampling and lgamma in bf16 are too coarse).
  const auto param_dtype = gate->weight.scalar_type();
  const torch::Tensor x = x_TD.to(param_dtype);

  // the [T, E] quantities in at least float32 (half-precision parameters: bf16/fp16 products widened)
  auto wide_type = [](torch::ScalarType t) {
    return t == torch::kBFloat16 || t == torch::kHalf ? torch::kFloat32 : t;
  };
  // In training with weights "all" the chain from x to r runs as one node (dirmoe_routing_chain.h);
  // elsewhere (evaluation, the other weights, half-precision parameters, no gradients) as operators.
  const bool fused_chain = is_training() && torch::GradMode::is_enabled() && cfg_.weights == "all" &&
                           (param_dtype == torch::kFloat32 || param_dtype == torch::kFloat64);
  // dispatch: from the scores ℓ + g (ℓ at eval), the selection before the fallback and the mask
  torch::Tensor mask_TE;
  torch::Tensor empty_T;
  torch::Tensor selected_TE;
  auto select = [&](const torch::Tensor& scores_TE) {
    selected_TE = scores_TE > 0;  // the selection before the empty-row fallback
    if (cfg_.selection == "hard") {
      empty_T = selected_TE.logical_not().all(/*dim=*/1);
      const torch::Tensor fallback_TE =
          torch::zeros_like(selected_TE).scatter_(1, scores_TE.argmax(/*dim=*/1, /*keepdim=*/true), true);
      mask_TE = selected_TE.logical_or(fallback_TE.logical_and(empty_T.unsqueeze(1)));
    } else if (cfg_.selection == "topk") {
      // exactly k experts per token: the k largest ℓ + g (ℓ at eval), whatever the threshold says
      empty_T = selected_TE.logical_not().all(/*dim=*/1);
      mask_TE = torch::zeros_like(selected_TE).scatter_(1, std::get<1>(scores_TE.topk(k_, /*dim=*/1)), true);
    } else {
      mask_TE = torch::ones_like(scores_TE, torch::kBool);
      empty_T = torch::zeros({scores_TE.size(0)}, scores_TE.options().dtype(torch::kBool));
    }
  };

  // selection: Binary Concrete z̃ = σ((ℓ + g)/τ), g ~ Logistic(0, 1) in training
  torch::Tensor noise_TE;  // the Logistic draw g, undefined at evaluation
  if (is_training()) {
    const int64_t t = x.size(0);
    const auto options = x.options().dtype(wide_type(param_dtype));
    torch::Tensor u_TE = noise.uniform_TE.defined()
                             ? noise.uniform_TE.to(options)
                             : fresh_uniform(noise.key, RouterNoiseStream::selection, t, e, options);
    TORCH_CHECK(u_TE.sizes() == torch::IntArrayRef({t, e}), "DirMoE: uniform noise has shape ", u_TE.sizes(),
                ", expected (", t, ", ", e, ")");
    const double tiny = std::numeric_limits<float>::epsilon();
    u_TE = u_TE.clamp(tiny, 1.0 - tiny);
    noise_TE = torch::log(u_TE) - torch::log1p(-u_TE);
  }

  // The Gamma draws, one per token and expert, shared by the LM path and (aux_detach_input) the loss
  // path; from torch's generator when the router has neither a noise key nor given draws. dγ/dα^q at
  // them, evaluated once for both paths.
  auto draw = [&](const torch::Tensor& alpha_q_TE) {
    torch::Tensor gamma_TE = gamma_draws(noise.gamma_TE, noise.key, RouterNoiseStream::gamma, alpha_q_TE);
    if (!gamma_TE.defined()) gamma_TE = at::_standard_gamma(alpha_q_TE.detach());
    return gamma_TE;
  };

  // What the LM path and the auxiliary losses read. The losses' values are those of the LM path; with
  // aux_detach_input their gradient reaches the router's parameters but not the residual stream x (H8).
  torch::Tensor weights_TE, aux_logits_TE, aux_z_soft_TE, aux_alpha_q_TE, aux_r_TE;
  if (fused_chain) {
    // the chain from x to r as one node with a hand-written backward (dirmoe_routing_chain.h)
    DirmoeChainConstants constants;
    constants.center_logits = cfg_.center_logits;
    constants.tau = tau;
    constants.lambda_q = cfg_.lambda_q;
    constants.alpha_lo_offset = schedule_.a_lo + eps;
    constants.alpha_eps = eps;
    constants.theta_mix = cfg_.theta_mix;
    constants.losses_reach_input = !cfg_.aux_detach_input;
    // "auto": bf16 where the step around runs in bf16 (autocast leaves float64 parameters alone)
    constants.alpha_mlp_bf16 = cfg_.alpha_mlp_precision == "bf16" ||
                               (cfg_.alpha_mlp_precision == "auto" && step_under_bf16_autocast() &&
                                param_dtype == torch::kFloat32);
    const DirmoeChainParameters parameters{gate->weight,     gate->bias,     alpha_hidden->weight, alpha_hidden->bias,
                                           alpha_lo->weight, alpha_lo->bias, alpha_hi->weight,     alpha_hi->bias};
    const GammaDrawFunction draw_with_grad = [&](const torch::Tensor& alpha_q_TE) {
      const torch::Tensor gamma_TE = draw(alpha_q_TE);
      return std::make_pair(gamma_TE, gamma_sample_grad(alpha_q_TE, gamma_TE));
    };
    const DirmoeChainOutput chain = dirmoe_routing_chain(x, parameters, noise_TE, draw_with_grad, constants);
    select(chain.scores_TE);
    weights_TE = chain.r_lm_TE * mask_TE.to(chain.r_lm_TE.scalar_type());
    aux_logits_TE = chain.logits_TE;
    aux_z_soft_TE = chain.z_soft_TE;
    aux_alpha_q_TE = chain.alpha_q_TE;
    aux_r_TE = chain.r_TE;
  } else {
    // The gate and the α MLP's first layer read the same x: one GEMM for both, [T, E + H]. With
    // aux_detach_input the auxiliary losses read a second copy of that product whose gradient stops
    // at x (shared_input_linear), instead of a second forward from x.detach().
    const bool detached_loss_path = cfg_.aux_detach_input && x.requires_grad();
    const std::vector<torch::Tensor> products_TO =
        shared_input_linear(x, {gate->weight, alpha_hidden->weight}, detached_loss_path);
    // α_lo and α_hi read the same hidden layer: one [T, H]·[H, 2E] GEMM for both (their weights
    // concatenated once per forward, 2E × H floats), split after.
    const torch::Tensor alpha_heads_weight = torch::cat({alpha_lo->weight, alpha_hi->weight}, 0);
    const torch::Tensor alpha_heads_bias = torch::cat({alpha_lo->bias, alpha_hi->bias}, 0);
    auto wide = [&](const torch::Tensor& t) { return t.to(wide_type(t.scalar_type())); };
    struct Heads {
      torch::Tensor logits_TE, alpha_lo_TE, alpha_hi_TE;
    };
    auto heads = [&](const torch::Tensor& product_TO) {
      Heads h;
      const torch::Tensor linear_TE = wide(product_TO.narrow(1, 0, e));
      const torch::Tensor centered_TE =
          cfg_.center_logits ? linear_TE - linear_TE.mean(1, /*keepdim=*/true) : linear_TE;
      h.logits_TE = centered_TE + gate->bias.to(linear_TE.scalar_type());
      const torch::Tensor hidden_TH = torch::silu(product_TO.narrow(1, e, product_TO.size(1) - e) + alpha_hidden->bias);
      const torch::Tensor raw_T2E =
          torch::softplus(wide(torch::addmm(alpha_heads_bias, hidden_TH, alpha_heads_weight.t())));
      h.alpha_lo_TE = raw_T2E.narrow(1, 0, e) + (schedule_.a_lo + eps);
      h.alpha_hi_TE = h.alpha_lo_TE + raw_T2E.narrow(1, e, e) + eps;
      return h;
    };
    const Heads lm = heads(products_TO[0]);
    const torch::Tensor scores_TE = noise_TE.defined() ? lm.logits_TE + noise_TE : lm.logits_TE;
    const torch::Tensor z_soft_TE = torch::sigmoid(scores_TE / tau);
    select(scores_TE);

    // contribution: θ ~ Dir(α^q), α^q = λ^q·(z̃·α_hi + (1−z̃)·α_lo)
    auto posterior = [&](const Heads& h, const torch::Tensor& z_TE) {
      return cfg_.lambda_q * (z_TE * h.alpha_hi_TE + (1.0 - z_TE) * h.alpha_lo_TE);
    };
    const torch::Tensor alpha_q_TE = posterior(lm, z_soft_TE);
    torch::Tensor gamma_TE, dgamma_dalpha_TE;
    if (is_training()) {
      gamma_TE = draw(alpha_q_TE);
      // Both paths reparameterise the same α^q values with the same draws: dγ/dα evaluated once.
      if (detached_loss_path && torch::GradMode::is_enabled()) dgamma_dalpha_TE = gamma_sample_grad(alpha_q_TE, gamma_TE);
    }
    auto contribution = [&](const torch::Tensor& alpha_TE) {
      torch::Tensor theta_TE = is_training() ? dirichlet_reparam(alpha_TE, gamma_TE, dgamma_dalpha_TE)
                                             : alpha_TE / alpha_TE.sum(1, /*keepdim=*/true);
      // NOTE: mixing θ with the uniform keeps every θ_i away from 0, where the renormalisation over the
      // dispatched experts and its straight-through gradient (∝ θ_j/Σ_dispatched θ) overflow.
      if (cfg_.theta_mix > 0) theta_TE = (1.0 - cfg_.theta_mix) * theta_TE + cfg_.theta_mix / static_cast<double>(e);
      return theta_TE;
    };
    const torch::Tensor theta_TE = contribution(alpha_q_TE);

    // routing weights: r (what the reconstruction decodes) and the dispatched experts' combine weights
    // (0 elsewhere), from the scores ℓ + g, their relaxed selection z̃ and the contribution θ̃
    auto routing_weights = [&](const torch::Tensor& s_TE, const torch::Tensor& z_TE, const torch::Tensor& th_TE) {
      if (cfg_.weights == "all") {
        // r = normalize(z̃ ⊙ θ̃) over all E, in log space: z̃ may underflow where ℓ + g ≪ 0
        const torch::Tensor r = torch::softmax(torch::log_sigmoid(s_TE / tau) + torch::log(th_TE), /*dim=*/1);
        return std::make_pair(r, r * mask_TE.to(r.scalar_type()));
      }
      // straight-through: the forward sees the hard mask, the gradient flows through z̃
      const torch::Tensor z_st_TE =
          cfg_.selection == "soft" ? z_TE : mask_TE.to(z_TE.scalar_type()) + (z_TE - z_TE.detach());
      const torch::Tensor masked_TE = z_st_TE * th_TE;
      const torch::Tensor w = masked_TE / masked_TE.sum(1, /*keepdim=*/true);
      return std::make_pair(w, w);
    };
    torch::Tensor r_TE;
    std::tie(r_TE, weights_TE) = routing_weights(scores_TE, z_soft_TE, theta_TE);

    aux_logits_TE = lm.logits_TE;
    aux_z_soft_TE = z_soft_TE;
    aux_alpha_q_TE = alpha_q_TE;
    aux_r_TE = r_TE;
    if (detached_loss_path) {
      // the same values recomputed from the losses' copy of the products (same noise, same Gamma draw)
      const Heads ax = heads(products_TO[1]);
      const torch::Tensor ax_scores_TE = noise_TE.defined() ? ax.logits_TE + noise_TE : ax.logits_TE;
      aux_logits_TE = ax.logits_TE;
      aux_z_soft_TE = torch::sigmoid(ax_scores_TE / tau);
      aux_alpha_q_TE = posterior(ax, aux_z_soft_TE);
      aux_r_TE = routing_weights(ax_scores_TE, aux_z_soft_TE, contribution(aux_alpha_q_TE)).first;
    }
  }

  RouterOutput out;
  out.dispatch_mask_TE = mask_TE;
  out.weights_TE = weights_TE;

  // losses: per token, mean over tokens, scaled by their coefficients
  // ‖x − (W r + b)‖² per token, mean over tokens, without the [T, D] decoder output (reconstruction_loss.h)
  out.aux_losses["dirmoe_recon"] =
      reconstruction_mse(x.detach(), aux_r_TE, decoder->weight, decoder->bias) * (0.5 / recon_variance_);
  const torch::Tensor alpha_p_TE =
      schedule_.lambda_p * (aux_z_soft_TE * cfg_.a_hi + (1.0 - aux_z_soft_TE) * schedule_.a_lo);
  out.aux_losses["dirmoe_kl_dir"] = cfg_.beta_theta * dirichlet_kl(aux_alpha_q_TE, alpha_p_TE).mean();
  const torch::Tensor expected_active_T = aux_z_soft_TE.sum(1);
  // P(ℓ + g > 0) = σ(ℓ) under the Logistic noise: each expert's probability of being selected
  const torch::Tensor select_prob_TE = torch::sigmoid(aux_logits_TE);
  const double k = static_cast<double>(k_);
  torch::Tensor sparsity;
  if (cfg_.sparsity_penalty == "batch") {
    sparsity = (global_batch_mean(expected_active_T.mean()) - k).square();
  } else if (cfg_.sparsity_penalty == "expected") {
    // E[(n − k)²] = Var[n] + (E[n] − k)² for n a sum of independent Bernoulli(p_i)
    sparsity = ((select_prob_TE * (1.0 - select_prob_TE)).sum(1) + (select_prob_TE.sum(1) - k).square()).mean();
  } else {
    sparsity = (expected_active_T - k).square().mean();
  }
  // s(t) of the H11 decay: exactly 1 with the default aux_scale_end = 1
  const double aux_scale = schedule_.aux_scale;
  torch::Tensor sparsity_term = lambda_sparsity.to(sparsity.scalar_type()) * sparsity;
  if (aux_scale != 1.0) sparsity_term = sparsity_term * aux_scale;
  out.aux_losses["dirmoe_sparsity"] = sparsity_term;
  if (cfg_.beta_z > 0) {
    out.aux_losses["dirmoe_kl_bern"] = cfg_.beta_z * bernoulli_kl(aux_logits_TE / tau, prior_pi_).sum(1).mean();
  }
  const torch::Tensor select_prob_E = global_batch_mean(select_prob_TE.mean(0));
  if (cfg_.usage_kl > 0) out.aux_losses["dirmoe_usage_kl"] = (cfg_.usage_kl * aux_scale) * rate_kl(select_prob_E, prior_pi_);
  if (cfg_.balance_coef > 0) {
    const torch::Tensor dispatched_E = global_batch_mean(mask_TE.to(select_prob_E.scalar_type()).mean(0));
    const torch::Tensor f_E = dispatched_E / dispatched_E.sum();
    // NOTE: the floor keeps P finite when every selection probability underflows to 0 (ℓ ≪ 0 throughout)
    const torch::Tensor p_E = select_prob_E / select_prob_E.sum().clamp_min(std::numeric_limits<float>::min());
    out.aux_losses["dirmoe_balance"] = cfg_.balance_coef * static_cast<double>(e) * (f_E * p_E).sum();
  }

  // metrics (detached, no host synchronisation)
  torch::NoGradGuard no_grad;
  const torch::Tensor active = mask_TE.sum(1).to(torch::kFloat32).mean();
  if (is_training() && cfg_.sparsity_control > 0) {
    // NOTE: the controller reads the selection before the fallback: with it, E[k] is never below 1 and
    // a two-sided rule on it could only ever raise λ_s at k = 1.
    const torch::Tensor selected = selected_TE.sum(1).to(torch::kFloat64).mean();
    selected_sum_ = selected_sum_.defined() ? selected_sum_ + selected : selected;
    ++n_measured_;
  }
  out.metrics["active_experts"] = active;
  out.metrics["empty_selection"] = empty_T.sum().to(torch::kFloat32);
  out.metrics["expected_active"] = expected_active_T.detach().mean();
  out.metrics["tau"] = scalar_metric(tau, active.device());
  out.metrics["a_lo"] = scalar_metric(schedule_.a_lo, active.device());
  out.metrics["lambda_p"] = scalar_metric(schedule_.lambda_p, active.device());
  out.metrics["lambda_sparsity"] = lambda_sparsity.to(torch::kFloat32).clone();
  if (cfg_.aux_scale_end != 1.0) out.metrics["aux_scale"] = scalar_metric(schedule_.aux_scale, active.device());
  return out;
}

namespace {
const bool registered = register_router("dirmoe", [](const Config& config) -> std::shared_ptr<RouterImpl> {
  return std::make_shared<DirmoeRouterImpl>(config);
});
}  // namespace

}  // namespace dirmoe
