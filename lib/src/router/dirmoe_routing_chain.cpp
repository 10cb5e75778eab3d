#include "dirmoe/router/dirmoe_routing_chain.h"

#include <ATen/record_function.h>
#include <torch/torch.h>

namespace dirmoe {
namespace {

using torch::Tensor;
using torch::autograd::AutogradContext;
using torch::autograd::variable_list;

/// What forward needs besides tensors. A struct, not loose arguments: autograd::Function records
/// every Tensor argument as an input.
struct ChainArguments {
  const GammaDrawFunction* draw;
  DirmoeChainConstants constants;
  bool shared_product;  // product_loss is product_lm: one Jacobian product for both paths' gradients
};

/// a + b where either may be undefined (an output that received no gradient).
Tensor add_defined(const Tensor& a, const Tensor& b) {
  if (!a.defined()) return b;
  if (!b.defined()) return a;
  return a + b;
}

/// The chain's forward values that its backward reads, named as in DirmoeChainOutput's comments.
struct SavedChain {
  Tensor z_TE, r_TE;          // z̃ and r
  Tensor slab_gap_TE;         // softplus(·) of the α_hi head: α_hi − α_lo − ε
  Tensor theta_TE, gamma_sum_T1, theta_mixed_TE;  // θ = γ/Σγ, Σγ, θ̃
  Tensor dgamma_dalpha_TE;    // dγ/dα^q
};

/// Gradients of one path's loss with respect to the chain's element-wise inputs.
struct PathGradients {
  Tensor linear_TE;  // d/d(W_gate·x), the product's first E columns
  Tensor raw_T2E;    // d/d of the α heads' pre-softplus outputs [α_lo | α_hi]
  Tensor gate_bias_E;
};

/// One path's gradient back through the element-wise chain, from the gradients on r, ℓ, z̃ and α^q
/// (any may be undefined). Each step is the derivative of the forward line it names.
PathGradients chain_backward(const SavedChain& s, const Tensor& raw_T2E, const DirmoeChainConstants& c,
                             const Tensor& g_r_TE, const Tensor& g_logits_TE, const Tensor& g_z_TE,
                             const Tensor& g_alpha_q_TE) {
  Tensor g_u_TE;  // d/du, u = (ℓ + g)/τ
  Tensor g_alpha_TE = g_alpha_q_TE;
  if (g_r_TE.defined()) {
    // r = softmax(v), v = log σ(u) + log θ̃: dv = r ⊙ (dr − Σ r·dr); d log σ(u)/du = 1 − z̃
    const Tensor g_v_TE = at::_softmax_backward_data(g_r_TE, s.r_TE, 1, s.r_TE.scalar_type());
    g_u_TE = g_v_TE * (1.0 - s.z_TE);
    Tensor g_theta_TE = g_v_TE / s.theta_mixed_TE;
    if (c.theta_mix > 0) g_theta_TE = g_theta_TE * (1.0 - c.theta_mix);
    // θ = γ/Σγ: dγ_i = (dθ_i − Σ_j dθ_j θ_j)/Σγ; then γ(α^q) by the implicit derivative dγ/dα^q
    const Tensor g_gamma_TE = (g_theta_TE - (g_theta_TE * s.theta_TE).sum(1, /*keepdim=*/true)) / s.gamma_sum_T1;
    g_alpha_TE = add_defined(g_alpha_TE, g_gamma_TE * s.dgamma_dalpha_TE);
  }
  Tensor g_z_total_TE = g_z_TE;
  Tensor g_soft_T2E;  // d/d softplus outputs [slab_lo | slab_gap]
  if (g_alpha_TE.defined()) {
    // α^q = λ^q·(slab_lo + a_lo + ε + z̃·(slab_gap + ε))
    const Tensor g_scaled_TE = g_alpha_TE * c.lambda_q;
    g_soft_T2E = torch::cat({g_scaled_TE, g_scaled_TE * s.z_TE}, 1);
    g_z_total_TE = add_defined(g_z_total_TE, g_scaled_TE * (s.slab_gap_TE + c.alpha_eps));
  }
  if (g_z_total_TE.defined()) g_u_TE = add_defined(g_u_TE, g_z_total_TE * s.z_TE * (1.0 - s.z_TE));  // z̃ = σ(u)
  // u = (ℓ + g)/τ
  const Tensor g_logits_total_TE = add_defined(g_logits_TE, g_u_TE.defined() ? g_u_TE / c.tau : Tensor());
  PathGradients out;
  if (g_logits_total_TE.defined()) {
    // ℓ = W·x − mean_e W·x + b (center_logits) or W·x + b
    out.gate_bias_E = g_logits_total_TE.sum(0);
    out.linear_TE = c.center_logits ? g_logits_total_TE - g_logits_total_TE.mean(1, /*keepdim=*/true) : g_logits_total_TE;
  }
  // softplus with torch's default β = 1 and threshold 20, as the forward
  if (g_soft_T2E.defined()) out.raw_T2E = at::softplus_backward(g_soft_T2E, raw_T2E, 1.0, 20.0);
  return out;
}

class DirmoeRoutingChain : public torch::autograd::Function<DirmoeRoutingChain> {
 public:
  static variable_list forward(AutogradContext* ctx, const Tensor& product_lm_TO, const Tensor& product_loss_TO,
                               const Tensor& gate_bias_E, const Tensor& hidden_bias_H, const Tensor& lo_weight_EH,
                               const Tensor& lo_bias_E, const Tensor& hi_weight_EH, const Tensor& hi_bias_E,
                               const Tensor& noise_TE, const ChainArguments& args) {
    (void)product_loss_TO;  // the same values as product_lm_TO; it is an input for its gradient only
    const DirmoeChainConstants& c = args.constants;
    const int64_t e = c.n_experts;
    const int64_t h = product_lm_TO.size(1) - e;
    // heads: α_lo = softplus(·) + a_lo + ε, α_hi = α_lo + softplus(·) + ε, from silu(x·W_hiddenᵀ + b)
    const Tensor pre_TH = product_lm_TO.narrow(1, e, h) + hidden_bias_H;
    const Tensor hidden_TH = torch::silu(pre_TH);
    const Tensor heads_weight_2EH = torch::cat({lo_weight_EH, hi_weight_EH}, 0);
    const Tensor raw_T2E = torch::addmm(torch::cat({lo_bias_E, hi_bias_E}, 0), hidden_TH, heads_weight_2EH.t());
    const Tensor soft_T2E = torch::softplus(raw_T2E);
    const Tensor slab_lo_TE = soft_T2E.narrow(1, 0, e);
    const Tensor slab_gap_TE = soft_T2E.narrow(1, e, e);
    // selection: ℓ, the scores ℓ + g and z̃ = σ((ℓ + g)/τ)
    const Tensor linear_TE = product_lm_TO.narrow(1, 0, e);
    const Tensor logits_TE =
        (c.center_logits ? linear_TE - linear_TE.mean(1, /*keepdim=*/true) : linear_TE) + gate_bias_E;
    const Tensor scores_TE = logits_TE + noise_TE;
    const Tensor u_TE = scores_TE / c.tau;
    const Tensor z_TE = torch::sigmoid(u_TE);
    // α^q = λ^q·(z̃·α_hi + (1 − z̃)·α_lo) = λ^q·(α_lo + z̃·(α_hi − α_lo))
    const Tensor alpha_q_TE = (slab_lo_TE + c.alpha_lo_offset + z_TE * (slab_gap_TE + c.alpha_eps)) * c.lambda_q;
    // θ = γ/Σγ, γ ~ Gamma(α^q), rounded to α^q's dtype as the draws' reparameterisation returns them
    auto [gamma_TE, dgamma_dalpha_TE] = (*args.draw)(alpha_q_TE);
    gamma_TE = gamma_TE.to(alpha_q_TE.scalar_type());
    const Tensor gamma_sum_T1 = gamma_TE.sum(1, /*keepdim=*/true);
    const Tensor theta_TE = gamma_TE / gamma_sum_T1;
    const Tensor theta_mixed_TE =
        c.theta_mix > 0 ? theta_TE * (1.0 - c.theta_mix) + c.theta_mix / static_cast<double>(e) : theta_TE;
    // r = normalize(z̃ ⊙ θ̃) in log space (z̃ may underflow where ℓ + g ≪ 0)
    const Tensor r_TE = torch::softmax(torch::log_sigmoid(u_TE) + torch::log(theta_mixed_TE), 1);

    ctx->saved_data["shared_product"] = args.shared_product;
    ctx->saved_data["n_experts"] = e;
    ctx->saved_data["center_logits"] = c.center_logits;
    ctx->saved_data["tau"] = c.tau;
    ctx->saved_data["lambda_q"] = c.lambda_q;
    ctx->saved_data["alpha_eps"] = c.alpha_eps;
    ctx->saved_data["theta_mix"] = c.theta_mix;
    ctx->saved_data["pre_TH"] = pre_TH;
    ctx->saved_data["hidden_TH"] = hidden_TH;
    ctx->saved_data["heads_weight_2EH"] = heads_weight_2EH;
    ctx->saved_data["raw_T2E"] = raw_T2E;
    ctx->saved_data["z_TE"] = z_TE;
    ctx->saved_data["r_TE"] = r_TE;
    ctx->saved_data["slab_gap_TE"] = slab_gap_TE;
    ctx->saved_data["theta_TE"] = theta_TE;
    ctx->saved_data["gamma_sum_T1"] = gamma_sum_T1;
    ctx->saved_data["theta_mixed_TE"] = theta_mixed_TE;
    ctx->saved_data["dgamma_dalpha_TE"] = dgamma_dalpha_TE.to(alpha_q_TE.scalar_type());
    ctx->mark_non_differentiable({scores_TE});
    ctx->set_materialize_grads(false);
    // the outputs are fresh tensors (clones where a saved value is also returned), so that no caller's
    // in-place change can reach what backward reads
    return {scores_TE, r_TE.clone(), logits_TE, z_TE.clone(), alpha_q_TE, r_TE.clone()};
  }

  static variable_list backward(AutogradContext* ctx, variable_list grads) {
    RECORD_FUNCTION("dirmoe::routing_chain_backward", std::vector<c10::IValue>());
    auto tensor = [&](const char* name) { return ctx->saved_data[name].toTensor(); };
    DirmoeChainConstants c;
    c.n_experts = ctx->saved_data["n_experts"].toInt();
    c.center_logits = ctx->saved_data["center_logits"].toBool();
    c.tau = ctx->saved_data["tau"].toDouble();
    c.lambda_q = ctx->saved_data["lambda_q"].toDouble();
    c.alpha_eps = ctx->saved_data["alpha_eps"].toDouble();
    c.theta_mix = ctx->saved_data["theta_mix"].toDouble();
    const bool shared_product = ctx->saved_data["shared_product"].toBool();
    SavedChain s;
    s.z_TE = tensor("z_TE");
    s.r_TE = tensor("r_TE");
    s.slab_gap_TE = tensor("slab_gap_TE");
    s.theta_TE = tensor("theta_TE");
    s.gamma_sum_T1 = tensor("gamma_sum_T1");
    s.theta_mixed_TE = tensor("theta_mixed_TE");
    s.dgamma_dalpha_TE = tensor("dgamma_dalpha_TE");
    const Tensor pre_TH = tensor("pre_TH");
    const Tensor hidden_TH = tensor("hidden_TH");
    const Tensor heads_weight_2EH = tensor("heads_weight_2EH");
    const Tensor raw_T2E = tensor("raw_T2E");
    const int64_t e = c.n_experts;
    // grads: scores (not differentiable), r_lm; then the losses' path: ℓ, z̃, α^q, r
    const Tensor& g_r_lm_TE = grads[1];
    const Tensor &g_logits_TE = grads[2], &g_z_TE = grads[3], &g_alpha_q_TE = grads[4], &g_r_TE = grads[5];

    // Each path's gradient through the element-wise chain. With one product for both paths the two
    // gradients go through the (linear) backward summed, once.
    std::vector<PathGradients> paths;
    if (shared_product) {
      paths.push_back(chain_backward(s, raw_T2E, c, add_defined(g_r_lm_TE, g_r_TE), g_logits_TE, g_z_TE, g_alpha_q_TE));
    } else {
      paths.push_back(chain_backward(s, raw_T2E, c, g_r_lm_TE, Tensor(), Tensor(), Tensor()));
      paths.push_back(chain_backward(s, raw_T2E, c, g_r_TE, g_logits_TE, g_z_TE, g_alpha_q_TE));
    }

    // heads: raw = silu(pre)·[W_lo; W_hi]ᵀ + [b_lo; b_hi]; the weights' gradients summed over the paths
    Tensor g_gate_bias_E, g_raw_sum_T2E, g_hidden_bias_H;
    for (const auto& p : paths) {
      g_gate_bias_E = add_defined(g_gate_bias_E, p.gate_bias_E);
      g_raw_sum_T2E = add_defined(g_raw_sum_T2E, p.raw_T2E);
    }
    std::vector<Tensor> g_products;
    for (const auto& p : paths) {
      const int64_t t = pre_TH.size(0);
      Tensor g_product_TO;
      if (p.linear_TE.defined() || p.raw_T2E.defined()) {
        g_product_TO = torch::empty({t, e + pre_TH.size(1)}, pre_TH.options());
        if (p.linear_TE.defined()) {
          g_product_TO.narrow(1, 0, e).copy_(p.linear_TE);
        } else {
          g_product_TO.narrow(1, 0, e).zero_();
        }
        Tensor g_pre_TH = g_product_TO.narrow(1, e, pre_TH.size(1));
        if (p.raw_T2E.defined()) {
          at::silu_backward_out(g_pre_TH, torch::mm(p.raw_T2E, heads_weight_2EH), pre_TH);
          g_hidden_bias_H = add_defined(g_hidden_bias_H, g_pre_TH.sum(0));
        } else {
          g_pre_TH.zero_();
        }
      }
      g_products.push_back(g_product_TO);
    }
    Tensor g_lo_weight, g_hi_weight, g_lo_bias, g_hi_bias;
    if (g_raw_sum_T2E.defined()) {
      const Tensor g_heads_weight_2EH = torch::mm(g_raw_sum_T2E.t(), hidden_TH);
      const Tensor g_heads_bias_2E = g_raw_sum_T2E.sum(0);
      g_lo_weight = g_heads_weight_2EH.narrow(0, 0, e);
      g_hi_weight = g_heads_weight_2EH.narrow(0, e, e);
      g_lo_bias = g_heads_bias_2E.narrow(0, 0, e);
      g_hi_bias = g_heads_bias_2E.narrow(0, e, e);
    }
    const Tensor g_product_lm_TO = g_products[0];
    const Tensor g_product_loss_TO = shared_product ? Tensor() : g_products[1];
    return {g_product_lm_TO, g_product_loss_TO, g_gate_bias_E, g_hidden_bias_H, g_lo_weight,
            g_lo_bias,       g_hi_weight,       g_hi_bias,     Tensor(),        Tensor()};
  }
};

}  // namespace

DirmoeChainOutput dirmoe_routing_chain(const torch::Tensor& product_lm_TO, const torch::Tensor& product_loss_TO,
                                       const DirmoeChainParameters& parameters, const torch::Tensor& noise_TE,
                                       const GammaDrawFunction& draw, const DirmoeChainConstants& constants) {
  const int64_t e = constants.n_experts;
  TORCH_CHECK(product_lm_TO.dim() == 2 && product_lm_TO.size(1) > e && e > 0,
              "dirmoe_routing_chain: product must be (T, E + H) with E = ", e, ", got ", product_lm_TO.sizes());
  TORCH_CHECK(product_loss_TO.sizes() == product_lm_TO.sizes(), "dirmoe_routing_chain: the losses' product has shape ",
              product_loss_TO.sizes(), ", the LM path's ", product_lm_TO.sizes());
  TORCH_CHECK(noise_TE.sizes() == torch::IntArrayRef({product_lm_TO.size(0), e}), "dirmoe_routing_chain: noise has shape ",
              noise_TE.sizes(), ", expected (", product_lm_TO.size(0), ", ", e, ")");
  const auto dtype = product_lm_TO.scalar_type();
  TORCH_CHECK(dtype == torch::kFloat32 || dtype == torch::kFloat64,
              "dirmoe_routing_chain: runs in float32 or float64, got ", dtype);
  RECORD_FUNCTION("dirmoe::routing_chain", std::vector<c10::IValue>());
  const ChainArguments args{&draw, constants, product_loss_TO.is_same(product_lm_TO)};
  const variable_list out = DirmoeRoutingChain::apply(
      product_lm_TO, product_loss_TO, parameters.gate_bias_E, parameters.hidden_bias_H, parameters.lo_weight_EH,
      parameters.lo_bias_E, parameters.hi_weight_EH, parameters.hi_bias_E, noise_TE.to(dtype), args);
  return {out[0], out[1], out[2], out[3], out[4], out[5]};
}

}  // namespace dirmoe
