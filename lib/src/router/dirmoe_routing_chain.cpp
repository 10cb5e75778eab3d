#include "dirmoe/router/dirmoe_routing_chain.h"

#include <vector>

#include <ATen/Dispatch.h>
#include <ATen/Parallel.h>
#include <ATen/record_function.h>
#include <c10/core/impl/LocalDispatchKeySet.h>
#include <torch/torch.h>

#include "dirmoe/router/routing_chain_element.h"
#include "dirmoe/router/element_kernels.h"

#if defined(DIRMOE_CUDA_KERNELS)
#include "routing_chain_cuda.h"
#endif

namespace dirmoe {
// a named namespace: the library's sources are compiled in unity batches, where anonymous ones merge
namespace routing_chain_detail {

using torch::Tensor;
using torch::autograd::AutogradContext;
using torch::autograd::variable_list;

/// What forward needs besides tensors. A struct, not loose arguments: autograd::Function records
/// every Tensor argument as an input.
struct ChainArguments {
  const GammaDrawFunction* draw;
  DirmoeChainConstants constants;
};

/// Rows per task of the CPU loops: each row is E experts of a few dozen flops.
constexpr int64_t kRowsPerTask = 256;

/// a + b where either may be undefined (an output that received no gradient).
Tensor add_defined(const Tensor& a, const Tensor& b) {
  if (!a.defined()) return b;
  if (!b.defined()) return a;
  return a + b;
}

/// A contiguous tensor's data, or nullptr where it is undefined (a gradient that was not given).
template <typename T>
const T* data_or_null(const Tensor& t) {
  return t.defined() ? t.data_ptr<T>() : nullptr;
}

/// The constants the per-token passes read, in the chain's dtype T.
template <typename T>
chain_element::ChainScalars<T> chain_scalars(const DirmoeChainConstants& c, int64_t e) {
  chain_element::ChainScalars<T> s;
  s.tau = T(c.tau);
  s.lambda_q = T(c.lambda_q);
  s.alpha_lo_offset = T(c.alpha_lo_offset);
  s.alpha_eps = T(c.alpha_eps);
  s.keep = T(1.0 - c.theta_mix);
  s.uniform = T(c.theta_mix / static_cast<double>(e));
  s.center_logits = c.center_logits;
  s.mix = c.theta_mix > 0;
  return s;
}

/// pass.run(token) for every token of `pass`, on `device`: the CPU's intra-op threads (kRowsPerTask
/// tokens per task), or one CUDA thread per token (routing_chain_cuda.cu).
template <typename Pass>
void run_per_token(const Pass& pass, const torch::Device& device) {
  if (device.is_cpu()) {
    at::parallel_for(0, pass.rows, kRowsPerTask, [&](int64_t begin, int64_t end) {
      for (int64_t row = begin; row < end; ++row) pass.run(row);
    });
    return;
  }
#if defined(DIRMOE_CUDA_KERNELS)
  cuda_chain::launch(pass, static_cast<int>(device.index()));
#else
  TORCH_CHECK(false, "dirmoe_routing_chain: this build has no CUDA kernels for ", device);  // element_passes_on
#endif
}

// ---- the element-wise chain ---------------------------------------------------------------------

/// The forward values the backward reads, besides the GEMMs' operands; [T, E] unless named.
struct ChainValues {
  Tensor logits_TE, scores_TE, z_TE, alpha_q_TE;  // ℓ, ℓ + g, z̃, α^q (backward reads z̃ alone of these)
  Tensor slab_gap_TE;                             // softplus(·) of the α_hi head: α_hi − α_lo − ε
  Tensor theta_TE, gamma_sum_T1, r_TE;            // θ = γ/Σγ, Σγ [T, 1], r
};

/// Before the draw: ℓ, ℓ + g, z̃ and α^q from the gate's columns of the product (linear_TE, a view
/// with the product's row stride) and the heads' pre-softplus outputs raw_T2E = [α_lo | α_hi].
void forward_before_draw(const Tensor& linear_TE, const Tensor& raw_T2E, const Tensor& noise_TE,
                         const Tensor& gate_bias_E, const DirmoeChainConstants& c, bool loops, ChainValues& v) {
  const int64_t t = linear_TE.size(0), e = linear_TE.size(1);
  if (!loops) {
    v.logits_TE = (c.center_logits ? linear_TE - linear_TE.mean(1, /*keepdim=*/true) : linear_TE) + gate_bias_E;
    v.scores_TE = v.logits_TE + noise_TE;
    v.z_TE = torch::sigmoid(v.scores_TE / c.tau);
    const Tensor soft_T2E = torch::softplus(raw_T2E);
    v.slab_gap_TE = soft_T2E.narrow(1, e, e);
    // α^q = λ^q·(z̃·α_hi + (1 − z̃)·α_lo) = λ^q·(α_lo + z̃·(α_hi − α_lo))
    v.alpha_q_TE = (soft_T2E.narrow(1, 0, e) + c.alpha_lo_offset + v.z_TE * (v.slab_gap_TE + c.alpha_eps)) * c.lambda_q;
    return;
  }
  const auto options = raw_T2E.options();
  for (Tensor* out : {&v.logits_TE, &v.scores_TE, &v.z_TE, &v.slab_gap_TE, &v.alpha_q_TE}) *out = torch::empty({t, e}, options);
  const Tensor noise = noise_TE.contiguous();
  const Tensor bias = gate_bias_E.contiguous();
  TORCH_CHECK(linear_TE.stride(1) == 1 && raw_T2E.is_contiguous(),
              "dirmoe_routing_chain: the products must have unit column strides");
  AT_DISPATCH_FLOATING_TYPES(raw_T2E.scalar_type(), "dirmoe_chain_forward_before_draw", [&] {
    using T = scalar_t;
    chain_element::ChainBeforeDraw<T> pass;
    pass.rows = t;
    pass.e = e;
    pass.linear_stride = linear_TE.stride(0);
    pass.linear = linear_TE.data_ptr<T>();
    pass.raw = raw_T2E.data_ptr<T>();
    pass.noise = noise.data_ptr<T>();
    pass.gate_bias = bias.data_ptr<T>();
    pass.logits = v.logits_TE.data_ptr<T>();
    pass.scores = v.scores_TE.data_ptr<T>();
    pass.z = v.z_TE.data_ptr<T>();
    pass.gap = v.slab_gap_TE.data_ptr<T>();
    pass.alpha_q = v.alpha_q_TE.data_ptr<T>();
    pass.s = chain_scalars<T>(c, e);
    run_per_token(pass, raw_T2E.device());
  });
}

/// After the draw: θ = γ/Σγ, θ̃ = (1 − m)·θ + m/E and r = softmax(log σ((ℓ + g)/τ) + log θ̃),
/// normalize(z̃ ⊙ θ̃) in log space (z̃ may underflow where ℓ + g ≪ 0).
void forward_after_draw(const Tensor& gamma_TE, const DirmoeChainConstants& c, bool loops, ChainValues& v) {
  const int64_t t = gamma_TE.size(0), e = gamma_TE.size(1);
  if (!loops) {
    v.gamma_sum_T1 = gamma_TE.sum(1, /*keepdim=*/true);
    v.theta_TE = gamma_TE / v.gamma_sum_T1;
    const Tensor theta_mixed_TE =
        c.theta_mix > 0 ? v.theta_TE * (1.0 - c.theta_mix) + c.theta_mix / static_cast<double>(e) : v.theta_TE;
    v.r_TE = torch::softmax(torch::log_sigmoid(v.scores_TE / c.tau) + torch::log(theta_mixed_TE), 1);
    return;
  }
  const Tensor gamma = gamma_TE.contiguous();
  v.theta_TE = torch::empty({t, e}, gamma.options());
  v.gamma_sum_T1 = torch::empty({t, 1}, gamma.options());
  v.r_TE = torch::empty({t, e}, gamma.options());
  AT_DISPATCH_FLOATING_TYPES(gamma.scalar_type(), "dirmoe_chain_forward_after_draw", [&] {
    using T = scalar_t;
    chain_element::ChainAfterDraw<T> pass;
    pass.rows = t;
    pass.e = e;
    pass.gamma = gamma.data_ptr<T>();
    pass.scores = v.scores_TE.data_ptr<T>();
    pass.theta = v.theta_TE.data_ptr<T>();
    pass.gamma_sum = v.gamma_sum_T1.data_ptr<T>();
    pass.r = v.r_TE.data_ptr<T>();
    pass.s = chain_scalars<T>(c, e);
    run_per_token(pass, gamma.device());
  });
}

/// The gradients of one path (or of both summed) with respect to the chain's inputs.
struct PathGradients {
  Tensor linear_TE;   // d/d(W_gate·x), the product's first E columns
  Tensor raw_T2E;     // d/d of the heads' pre-softplus outputs [α_lo | α_hi]
  Tensor logits_TE;   // d/dℓ in all (its sum over tokens is the gate bias's gradient)
};

/// Tensor operators: one path's gradient back through the element-wise chain from the gradients on
/// r, ℓ, z̃ and α^q (any may be undefined). Each step is the derivative of the forward line it names.
PathGradients backward_operators(const ChainValues& v, const Tensor& dgamma_dalpha_TE, const Tensor& raw_T2E,
                                 const DirmoeChainConstants& c, const Tensor& g_r_TE, const Tensor& g_logits_TE,
                                 const Tensor& g_z_TE, const Tensor& g_alpha_q_TE) {
  const int64_t e = v.z_TE.size(1);
  Tensor g_u_TE;  // d/du, u = (ℓ + g)/τ
  Tensor g_alpha_TE = g_alpha_q_TE;
  if (g_r_TE.defined()) {
    // r = softmax(v), v = log σ(u) + log θ̃: dv = r ⊙ (dr − Σ r·dr); d log σ(u)/du = 1 − z̃
    const Tensor g_v_TE = at::_softmax_backward_data(g_r_TE, v.r_TE, 1, v.r_TE.scalar_type());
    g_u_TE = g_v_TE * (1.0 - v.z_TE);
    const Tensor theta_mixed_TE =
        c.theta_mix > 0 ? v.theta_TE * (1.0 - c.theta_mix) + c.theta_mix / static_cast<double>(e) : v.theta_TE;
    Tensor g_theta_TE = g_v_TE / theta_mixed_TE;
    if (c.theta_mix > 0) g_theta_TE = g_theta_TE * (1.0 - c.theta_mix);
    // θ = γ/Σγ: dγ_i = (dθ_i − Σ_j dθ_j θ_j)/Σγ; then γ(α^q) by the implicit derivative dγ/dα^q
    const Tensor g_gamma_TE = (g_theta_TE - (g_theta_TE * v.theta_TE).sum(1, /*keepdim=*/true)) / v.gamma_sum_T1;
    g_alpha_TE = add_defined(g_alpha_TE, g_gamma_TE * dgamma_dalpha_TE);
  }
  Tensor g_z_total_TE = g_z_TE;
  PathGradients out;
  if (g_alpha_TE.defined()) {
    // α^q = λ^q·(softplus(lo) + a_lo + ε + z̃·(softplus(hi) + ε)); softplus with β = 1, threshold 20
    const Tensor g_scaled_TE = g_alpha_TE * c.lambda_q;
    out.raw_T2E = at::softplus_backward(torch::cat({g_scaled_TE, g_scaled_TE * v.z_TE}, 1), raw_T2E, 1.0, 20.0);
    g_z_total_TE = add_defined(g_z_total_TE, g_scaled_TE * (v.slab_gap_TE + c.alpha_eps));
  }
  if (g_z_total_TE.defined()) g_u_TE = add_defined(g_u_TE, g_z_total_TE * v.z_TE * (1.0 - v.z_TE));  // z̃ = σ(u)
  // u = (ℓ + g)/τ; ℓ = W·x − mean_e W·x + b (center_logits) or W·x + b
  out.logits_TE = add_defined(g_logits_TE, g_u_TE.defined() ? g_u_TE / c.tau : Tensor());
  if (out.logits_TE.defined()) {
    out.linear_TE = c.center_logits ? out.logits_TE - out.logits_TE.mean(1, /*keepdim=*/true) : out.logits_TE;
  }
  return out;
}

/// Per-token loops (CPU threads or CUDA kernels): the LM path's gradient (from g_r_lm alone) and the
/// sum of both paths' (g_r_lm + g_r and the losses' gradients on ℓ, z̃, α^q), the same steps as
/// backward_operators, one token at a time (routing_chain_element.h). `lm` is left empty where only
/// the sum is wanted.
void backward_loops(const ChainValues& v, const Tensor& dgamma_dalpha_TE, const Tensor& raw_T2E,
                    const DirmoeChainConstants& c, const Tensor& g_r_lm_TE, const Tensor& g_r_TE,
                    const Tensor& g_logits_TE, const Tensor& g_z_TE, const Tensor& g_alpha_q_TE, bool want_lm,
                    PathGradients& lm, PathGradients& sum) {
  const int64_t t = v.z_TE.size(0), e = v.z_TE.size(1);
  const auto options = v.z_TE.options();
  for (PathGradients* p : {&lm, &sum}) {
    if (p == &lm && !want_lm) continue;
    p->linear_TE = torch::empty({t, e}, options);
    p->raw_T2E = torch::empty({t, 2 * e}, options);
    p->logits_TE = torch::empty({t, e}, options);
  }
  auto contiguous_or_undefined = [](const Tensor& g) { return g.defined() ? g.contiguous() : Tensor(); };
  const Tensor g_r_lm = contiguous_or_undefined(g_r_lm_TE), g_r = contiguous_or_undefined(g_r_TE);
  const Tensor g_logits = contiguous_or_undefined(g_logits_TE), g_z = contiguous_or_undefined(g_z_TE);
  const Tensor g_alpha = contiguous_or_undefined(g_alpha_q_TE);
  const Tensor dgamma = dgamma_dalpha_TE.contiguous();
  AT_DISPATCH_FLOATING_TYPES(options.dtype().toScalarType(), "dirmoe_chain_backward", [&] {
    using T = scalar_t;
    chain_element::ChainBackward<T> sum_pass;
    sum_pass.rows = t;
    sum_pass.e = e;
    sum_pass.r = v.r_TE.data_ptr<T>();
    sum_pass.z = v.z_TE.data_ptr<T>();
    sum_pass.gap = v.slab_gap_TE.data_ptr<T>();
    sum_pass.theta = v.theta_TE.data_ptr<T>();
    sum_pass.gamma_sum = v.gamma_sum_T1.data_ptr<T>();
    sum_pass.dgamma = dgamma.data_ptr<T>();
    sum_pass.raw = raw_T2E.data_ptr<T>();
    sum_pass.s = chain_scalars<T>(c, e);
    // the LM path: the same forward values, r_lm's gradient alone
    chain_element::ChainBackward<T> lm_pass = sum_pass;
    lm_pass.g_r = data_or_null<T>(g_r_lm);
    if (want_lm) {
      lm_pass.out_linear = lm.linear_TE.data_ptr<T>();
      lm_pass.out_raw = lm.raw_T2E.data_ptr<T>();
      lm_pass.out_logits = lm.logits_TE.data_ptr<T>();
    }
    // both paths: r_lm's and r's gradients summed, and the losses' on ℓ, z̃, α^q
    sum_pass.g_r = data_or_null<T>(g_r_lm);
    sum_pass.g_r2 = data_or_null<T>(g_r);
    sum_pass.g_logits = data_or_null<T>(g_logits);
    sum_pass.g_z = data_or_null<T>(g_z);
    sum_pass.g_alpha = data_or_null<T>(g_alpha);
    sum_pass.out_linear = sum.linear_TE.data_ptr<T>();
    sum_pass.out_raw = sum.raw_T2E.data_ptr<T>();
    sum_pass.out_logits = sum.logits_TE.data_ptr<T>();
    run_per_token(chain_element::ChainBackwardPair<T>(sum_pass, want_lm ? &lm_pass : nullptr), options.device());
  });
}

// ---- the node -----------------------------------------------------------------------------------

class DirmoeRoutingChain : public torch::autograd::Function<DirmoeRoutingChain> {
 public:
  static variable_list forward(AutogradContext* ctx, const Tensor& x_TD, const Tensor& gate_weight_ED,
                               const Tensor& gate_bias_E, const Tensor& hidden_weight_HD, const Tensor& hidden_bias_H,
                               const Tensor& lo_weight_EH, const Tensor& lo_bias_E, const Tensor& hi_weight_EH,
                               const Tensor& hi_bias_E, const Tensor& noise_TE, const ChainArguments& args) {
    const DirmoeChainConstants& c = args.constants;
    const int64_t e = gate_weight_ED.size(0), h = hidden_weight_HD.size(0);
    const bool loops = c.element_loops && element_passes_on(x_TD.device());
    // weight_OD: what x's gradient multiplies, [gate | hidden] [E + H, D], or the gate's alone [E, D]
    // when the hidden layer runs in bf16 (the backward rounds x and W_h to bf16 again: not saved, an
    // extra [T, D] per layer kept until the backward otherwise)
    Tensor weight_OD, linear_TE, pre_TH;
    if (!c.alpha_mlp_bf16) {
      // one GEMM for the gate and the α MLP's hidden layer, which read the same x: [T, E + H], the
      // hidden bias added by the GEMM (the gate's bias comes after the centring)
      weight_OD = torch::cat({gate_weight_ED, hidden_weight_HD}, 0);
      const Tensor product_TO = torch::addmm(
          torch::cat({torch::zeros({e}, hidden_bias_H.options()), hidden_bias_H}), x_TD, weight_OD.t());
      linear_TE = product_TO.narrow(1, 0, e);
      pre_TH = product_TO.narrow(1, e, h);
    } else {
      // the gate in x's dtype (its logits decide the dispatch); W_h·x from bf16 operands, rounded to
      // bf16 as autocast's linear returns it, widened, then its bias
      weight_OD = gate_weight_ED;
      linear_TE = torch::mm(x_TD, gate_weight_ED.t());
      pre_TH = torch::mm(x_TD.to(torch::kBFloat16), hidden_weight_HD.to(torch::kBFloat16).t())
                   .to(x_TD.scalar_type())
                   .add_(hidden_bias_H);
    }
    const Tensor hidden_TH = torch::silu(pre_TH);
    const Tensor heads_weight_2EH = torch::cat({lo_weight_EH, hi_weight_EH}, 0);
    const Tensor raw_T2E = torch::addmm(torch::cat({lo_bias_E, hi_bias_E}, 0), hidden_TH, heads_weight_2EH.t());

    ChainValues v;
    forward_before_draw(linear_TE, raw_T2E, noise_TE, gate_bias_E, c, loops, v);
    // γ ~ Gamma(α^q), rounded to α^q's dtype as the draws' reparameterisation returns them
    auto [gamma_TE, dgamma_dalpha_TE] = (*args.draw)(v.alpha_q_TE);
    TORCH_CHECK(gamma_TE.defined() && dgamma_dalpha_TE.defined() && gamma_TE.sizes() == v.alpha_q_TE.sizes() &&
                    gamma_TE.device() == v.alpha_q_TE.device(),
                "dirmoe_routing_chain: the Gamma draws must have α^q's shape ", v.alpha_q_TE.sizes(), " and device");
    forward_after_draw(gamma_TE.to(v.alpha_q_TE.scalar_type()), c, loops, v);

    const Tensor dgamma_TE = dgamma_dalpha_TE.to(v.alpha_q_TE.scalar_type());
    TORCH_CHECK(dgamma_TE.sizes() == v.alpha_q_TE.sizes() && dgamma_TE.device() == v.alpha_q_TE.device(),
                "dirmoe_routing_chain: dγ/dα^q must have α^q's shape ", v.alpha_q_TE.sizes(), " and device, got ",
                dgamma_TE.sizes());
    ctx->saved_data["center_logits"] = c.center_logits;
    ctx->saved_data["tau"] = c.tau;
    ctx->saved_data["lambda_q"] = c.lambda_q;
    ctx->saved_data["alpha_eps"] = c.alpha_eps;
    ctx->saved_data["theta_mix"] = c.theta_mix;
    ctx->saved_data["losses_reach_input"] = c.losses_reach_input;
    ctx->saved_data["loops"] = loops;
    ctx->saved_data["alpha_mlp_bf16"] = c.alpha_mlp_bf16;
    // every tensor through save_for_backward: released after the backward, and checked for in-place
    // changes (z̃ and r are outputs)
    ctx->save_for_backward({x_TD, v.z_TE, v.r_TE, weight_OD, pre_TH, hidden_TH, heads_weight_2EH, raw_T2E,
                            v.slab_gap_TE, v.theta_TE, v.gamma_sum_T1, dgamma_TE,
                            c.alpha_mlp_bf16 ? hidden_weight_HD : Tensor()});
    ctx->mark_non_differentiable({v.scores_TE});
    ctx->set_materialize_grads(false);
    return {v.scores_TE, v.r_TE, v.logits_TE, v.z_TE, v.alpha_q_TE, v.r_TE.clone()};
  }

  static variable_list backward(AutogradContext* ctx, variable_list grads) {
    RECORD_FUNCTION("dirmoe::routing_chain_backward", std::vector<c10::IValue>());
    TORCH_CHECK(!torch::GradMode::is_enabled(),
                "dirmoe_routing_chain: its backward is not differentiable (no create_graph / double backward)");
    DirmoeChainConstants c;
    c.center_logits = ctx->saved_data["center_logits"].toBool();
    c.tau = ctx->saved_data["tau"].toDouble();
    c.lambda_q = ctx->saved_data["lambda_q"].toDouble();
    c.alpha_eps = ctx->saved_data["alpha_eps"].toDouble();
    c.theta_mix = ctx->saved_data["theta_mix"].toDouble();
    c.losses_reach_input = ctx->saved_data["losses_reach_input"].toBool();
    const bool loops = ctx->saved_data["loops"].toBool();
    const bool alpha_mlp_bf16 = ctx->saved_data["alpha_mlp_bf16"].toBool();
    const auto saved = ctx->get_saved_variables();
    const Tensor& x_TD = saved[0];
    ChainValues v;
    v.z_TE = saved[1];
    v.r_TE = saved[2];
    const Tensor& weight_OD = saved[3];
    const Tensor& pre_TH = saved[4];
    const Tensor& hidden_TH = saved[5];
    const Tensor& heads_weight_2EH = saved[6];
    const Tensor& raw_T2E = saved[7];
    v.slab_gap_TE = saved[8];
    v.theta_TE = saved[9];
    v.gamma_sum_T1 = saved[10];
    const Tensor& dgamma_dalpha_TE = saved[11];
    const Tensor& hidden_weight_HD = saved[12];  // with the hidden layer in bf16 only
    const int64_t t = x_TD.size(0), e = v.z_TE.size(1), h = pre_TH.size(1);
    // grads: scores (not differentiable), r_lm; then the losses' path: ℓ, z̃, α^q, r
    const Tensor& g_r_lm_TE = grads[1];
    const Tensor &g_logits_TE = grads[2], &g_z_TE = grads[3], &g_alpha_q_TE = grads[4], &g_r_TE = grads[5];

    // The element-wise chain's backward is linear in the incoming gradient: the weights take both
    // paths' gradients summed through it once, x the LM path's alone (a second pass) unless the
    // losses reach the input too.
    const bool x_grad = ctx->needs_input_grad(0);
    // x's gradient is the LM path's alone: none where the LM path got none (a loss of the losses' path alone)
    const bool want_lm = x_grad && !c.losses_reach_input && g_r_lm_TE.defined();
    PathGradients lm, sum;
    if (loops) {
      backward_loops(v, dgamma_dalpha_TE, raw_T2E, c, g_r_lm_TE, g_r_TE, g_logits_TE, g_z_TE, g_alpha_q_TE, want_lm, lm,
                     sum);
    } else {
      sum = backward_operators(v, dgamma_dalpha_TE, raw_T2E, c, add_defined(g_r_lm_TE, g_r_TE), g_logits_TE, g_z_TE,
                               g_alpha_q_TE);
      if (want_lm) lm = backward_operators(v, dgamma_dalpha_TE, raw_T2E, c, g_r_lm_TE, Tensor(), Tensor(), Tensor());
    }

    // back through the heads' GEMM and the SiLU into the product's columns [gate | hidden]
    auto product_gradient = [&](const PathGradients& p) {
      const Tensor g_product_TO = torch::empty({t, e + h}, pre_TH.options());
      Tensor g_linear_TE = g_product_TO.narrow(1, 0, e);
      Tensor g_pre_TH = g_product_TO.narrow(1, e, h);
      if (p.linear_TE.defined()) {
        g_linear_TE.copy_(p.linear_TE);
      } else {
        g_linear_TE.zero_();
      }
      if (p.raw_T2E.defined()) {
        at::silu_backward_out(g_pre_TH, torch::mm(p.raw_T2E, heads_weight_2EH), pre_TH);
      } else {
        g_pre_TH.zero_();
      }
      return g_product_TO;
    };
    const Tensor g_product_sum_TO = product_gradient(sum);
    // x's gradient from the product's gradient [T, E + H]: one GEMM, or with the hidden layer in bf16
    // the gate's part in x's dtype plus the hidden layer's from bf16 operands (its result rounded to
    // bf16, as autocast's linear backward returns it)
    auto input_gradient = [&](const Tensor& g_product_TO) {
      if (!alpha_mlp_bf16) return torch::mm(g_product_TO, weight_OD);
      const Tensor g_hidden_low_TD =
          torch::mm(g_product_TO.narrow(1, e, h).to(torch::kBFloat16), hidden_weight_HD.to(torch::kBFloat16))
              .to(x_TD.scalar_type());
      return torch::addmm(g_hidden_low_TD, g_product_TO.narrow(1, 0, e), weight_OD);
    };
    Tensor g_x_TD;
    if (want_lm) {
      g_x_TD = input_gradient(product_gradient(lm));
    } else if (x_grad && c.losses_reach_input) {
      g_x_TD = input_gradient(g_product_sum_TO);
    }
    Tensor g_gate_weight_ED, g_hidden_weight_HD;
    if (!alpha_mlp_bf16 && (ctx->needs_input_grad(1) || ctx->needs_input_grad(3))) {
      const Tensor g_weight_OD = torch::mm(g_product_sum_TO.t(), x_TD);
      g_gate_weight_ED = g_weight_OD.narrow(0, 0, e);
      g_hidden_weight_HD = g_weight_OD.narrow(0, e, h);
    }
    if (alpha_mlp_bf16 && ctx->needs_input_grad(1)) g_gate_weight_ED = torch::mm(g_product_sum_TO.narrow(1, 0, e).t(), x_TD);
    if (alpha_mlp_bf16 && ctx->needs_input_grad(3)) {
      g_hidden_weight_HD =
          torch::mm(g_product_sum_TO.narrow(1, e, h).to(torch::kBFloat16).t(), x_TD.to(torch::kBFloat16))
              .to(x_TD.scalar_type());
    }
    const Tensor g_hidden_bias_H = g_product_sum_TO.narrow(1, e, h).sum(0);
    const Tensor g_gate_bias_E = sum.logits_TE.defined() ? sum.logits_TE.sum(0) : Tensor();
    Tensor g_lo_weight, g_hi_weight, g_lo_bias, g_hi_bias;
    if (sum.raw_T2E.defined() && (ctx->needs_input_grad(5) || ctx->needs_input_grad(7))) {
      const Tensor g_heads_weight_2EH = torch::mm(sum.raw_T2E.t(), hidden_TH);
      const Tensor g_heads_bias_2E = sum.raw_T2E.sum(0);
      g_lo_weight = g_heads_weight_2EH.narrow(0, 0, e);
      g_hi_weight = g_heads_weight_2EH.narrow(0, e, e);
      g_lo_bias = g_heads_bias_2E.narrow(0, 0, e);
      g_hi_bias = g_heads_bias_2E.narrow(0, e, e);
    }
    return {g_x_TD,      g_gate_weight_ED, g_gate_bias_E, g_hidden_weight_HD, g_hidden_bias_H,
            g_lo_weight, g_lo_bias,        g_hi_weight,   g_hi_bias,          Tensor(),
            Tensor()};
  }
};

}  // namespace routing_chain_detail

DirmoeChainOutput dirmoe_routing_chain(const torch::Tensor& x_TD, const DirmoeChainParameters& p,
                                       const torch::Tensor& noise_TE, const GammaDrawFunction& draw,
                                       const DirmoeChainConstants& constants) {
  const int64_t e = p.gate_weight_ED.size(0);
  TORCH_CHECK(x_TD.dim() == 2 && p.gate_weight_ED.dim() == 2 && p.gate_weight_ED.size(1) == x_TD.size(1) &&
                  p.hidden_weight_HD.dim() == 2 && p.hidden_weight_HD.size(1) == x_TD.size(1),
              "dirmoe_routing_chain: x ", x_TD.sizes(), ", gate weight ", p.gate_weight_ED.sizes(), " and hidden weight ",
              p.hidden_weight_HD.sizes(), " must be (T, D), (E, D) and (H, D)");
  TORCH_CHECK(noise_TE.sizes() == torch::IntArrayRef({x_TD.size(0), e}), "dirmoe_routing_chain: noise has shape ",
              noise_TE.sizes(), ", expected (", x_TD.size(0), ", ", e, ")");
  const auto dtype = x_TD.scalar_type();
  TORCH_CHECK(dtype == torch::kFloat32 || dtype == torch::kFloat64,
              "dirmoe_routing_chain: runs in float32 or float64, got ", dtype);
  for (const torch::Tensor* t : {&p.gate_weight_ED, &p.gate_bias_E, &p.hidden_weight_HD, &p.hidden_bias_H,
                                 &p.lo_weight_EH, &p.lo_bias_E, &p.hi_weight_EH, &p.hi_bias_E}) {
    TORCH_CHECK(t->scalar_type() == dtype && t->device() == x_TD.device(),
                "dirmoe_routing_chain: the parameters must have x's dtype and device");
  }
  TORCH_CHECK(noise_TE.device() == x_TD.device(), "dirmoe_routing_chain: noise on ", noise_TE.device(), ", x on ",
              x_TD.device());
  RECORD_FUNCTION("dirmoe::routing_chain", std::vector<c10::IValue>());
  // in the parameters' dtype whatever the caller's autocast state (the loops read float32/float64;
  // moe_layer.cpp turns autocast off around the router anyway)
  const c10::impl::ExcludeDispatchKeyGuard no_autocast(c10::autocast_dispatch_keyset);
  using routing_chain_detail::ChainArguments;
  using routing_chain_detail::DirmoeRoutingChain;
  using torch::autograd::variable_list;
  const ChainArguments args{&draw, constants};
  const variable_list out =
      DirmoeRoutingChain::apply(x_TD, p.gate_weight_ED, p.gate_bias_E, p.hidden_weight_HD, p.hidden_bias_H,
                                p.lo_weight_EH, p.lo_bias_E, p.hi_weight_EH, p.hi_bias_E, noise_TE.to(dtype), args);
  return {out[0], out[1], out[2], out[3], out[4], out[5]};
}

}  // namespace dirmoe
