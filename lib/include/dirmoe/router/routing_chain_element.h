#pragma once
// One token of DirMoE's routing chain (dirmoe_routing_chain.h), written once for the host and for
// CUDA device code: the element-wise steps before and after the Gamma draw, and the backward of one
// path. The CPU loops (dirmoe_routing_chain.cpp, tokens on the intra-op threads) and the CUDA kernels
// (routing_chain_cuda.cu, one thread per token) run these same functions, so both devices compute the
// same formulas in the same order; they differ in the math library's last bits (glibc's expf against
// CUDA's) and where nvcc contracts a·b + c into one fused multiply-add (the host build does not). The formulas are those of dirmoe_router.h (arXiv 2602.09001 §3–4):
//   ℓ = W·x − mean_e W·x + b,  u = (ℓ + g)/τ,  z̃ = σ(u),
//   α_lo = softplus(lo) + a_lo + ε,  α_hi = α_lo + softplus(hi) + ε,  α^q = λ^q·(α_lo + z̃·(α_hi − α_lo)),
//   θ = γ/Σγ,  θ̃ = (1 − m)·θ + m/E,  r = softmax(log σ(u) + log θ̃).
//
// Plain C++ only (no std::min, std::max, std::vector): device code cannot call them without nvcc's
// relaxed-constexpr mode. The float and double overloads below call the C library's functions by
// their typed names, which are what std::exp(float) and the others call on the host.
#include <cmath>
#include <cstdint>

#include "dirmoe/core/philox_rounds.h"  // DIRMOE_HOST_DEVICE

namespace dirmoe::chain_element {

DIRMOE_HOST_DEVICE inline float exp_of(float x) { return expf(x); }
DIRMOE_HOST_DEVICE inline double exp_of(double x) { return exp(x); }
DIRMOE_HOST_DEVICE inline float log_of(float x) { return logf(x); }
DIRMOE_HOST_DEVICE inline double log_of(double x) { return log(x); }
DIRMOE_HOST_DEVICE inline float log1p_of(float x) { return log1pf(x); }
DIRMOE_HOST_DEVICE inline double log1p_of(double x) { return log1p(x); }

/// softplus with torch's default β = 1, threshold 20
template <typename T>
DIRMOE_HOST_DEVICE inline T softplus(T x) {
  return x > T(20) ? x : log1p_of(exp_of(x));
}
/// its derivative, as softplus_backward: e^x/(e^x + 1) below the threshold, 1 above
template <typename T>
DIRMOE_HOST_DEVICE inline T softplus_slope(T x) {
  if (x > T(20)) return T(1);
  const T ex = exp_of(x);
  return ex / (ex + T(1));
}
template <typename T>
DIRMOE_HOST_DEVICE inline T sigmoid(T x) {
  return T(1) / (T(1) + exp_of(-x));
}
/// log σ(x) = min(x, 0) − log1p(e^−|x|), finite for every x
template <typename T>
DIRMOE_HOST_DEVICE inline T log_sigmoid(T x) {
  const T magnitude = x < T(0) ? -x : x;
  const T lower = T(0) < x ? T(0) : x;  // std::min(x, 0)
  return lower - log1p_of(exp_of(-magnitude));
}

/// The constants of one forward (dirmoe_routing_chain.h's DirmoeChainConstants) in the chain's dtype.
template <typename T>
struct ChainScalars {
  T tau = T(1), lambda_q = T(1);
  T alpha_lo_offset = T(0);  // a_lo(t) + ε
  T alpha_eps = T(0);        // ε
  T keep = T(1);             // 1 − m, the θ share kept by the uniform mix
  T uniform = T(0);          // m/E
  bool center_logits = true;
  bool mix = false;          // m > 0
};

/// Before the draw, for one token: ℓ, ℓ + g, z̃, the slab gap softplus(hi) and α^q from the gate's
/// columns of the product (`linear`, rows `linear_stride` apart) and the heads' pre-softplus outputs
/// raw [T, 2E] = [lo | hi]. Every other array is [T, E], contiguous.
template <typename T>
struct ChainBeforeDraw {
  int64_t rows = 0, e = 0, linear_stride = 0;
  const T* linear = nullptr;
  const T* raw = nullptr;
  const T* noise = nullptr;      // g, the Logistic draw
  const T* gate_bias = nullptr;  // b [E]
  T *logits = nullptr, *scores = nullptr, *z = nullptr, *gap = nullptr, *alpha_q = nullptr;
  ChainScalars<T> s;

  DIRMOE_HOST_DEVICE void run(int64_t row) const {
    const T* lin_row = linear + row * linear_stride;
    T mean = T(0);
    if (s.center_logits) {
      for (int64_t i = 0; i < e; ++i) mean += lin_row[i];
      mean /= T(e);
    }
    for (int64_t i = 0; i < e; ++i) {
      const int64_t at = row * e + i;
      logits[at] = (lin_row[i] - mean) + gate_bias[i];
      scores[at] = logits[at] + noise[at];
      z[at] = sigmoid(scores[at] / s.tau);
      gap[at] = softplus(raw[row * 2 * e + e + i]);
      alpha_q[at] = (softplus(raw[row * 2 * e + i]) + s.alpha_lo_offset + z[at] * (gap[at] + s.alpha_eps)) * s.lambda_q;
    }
  }
};

/// After the draw, for one token: Σγ, θ = γ/Σγ and r = softmax(log σ((ℓ + g)/τ) + log θ̃), the
/// normalisation of z̃ ⊙ θ̃ in log space (z̃ may underflow where ℓ + g ≪ 0).
template <typename T>
struct ChainAfterDraw {
  int64_t rows = 0, e = 0;
  const T* gamma = nullptr;
  const T* scores = nullptr;
  T *theta = nullptr, *gamma_sum = nullptr /* [T] */, *r = nullptr;
  ChainScalars<T> s;

  DIRMOE_HOST_DEVICE void run(int64_t row) const {
    const int64_t base = row * e;
    T sum = T(0);
    for (int64_t i = 0; i < e; ++i) sum += gamma[base + i];
    gamma_sum[row] = sum;
    T max_v = -INFINITY;
    for (int64_t i = 0; i < e; ++i) {
      theta[base + i] = gamma[base + i] / sum;
      const T mixed = s.mix ? theta[base + i] * s.keep + s.uniform : theta[base + i];
      r[base + i] = log_sigmoid(scores[base + i] / s.tau) + log_of(mixed);  // the log-weight v, for now
      if (max_v < r[base + i]) max_v = r[base + i];                          // std::max(max_v, v)
    }
    T total = T(0);
    for (int64_t i = 0; i < e; ++i) {
      r[base + i] = exp_of(r[base + i] - max_v);
      total += r[base + i];
    }
    for (int64_t i = 0; i < e; ++i) r[base + i] /= total;
  }
};

/// The backward of one path through the element-wise chain, for one token: from the gradients on r
/// (g_r, plus g_r2 where given: the sum of both paths' gradients), ℓ, z̃ and α^q (each may be null) to
/// the gradients on the gate's columns of the product (centred), the heads' pre-softplus outputs
/// [T, 2E] and ℓ. Each step is the derivative of the forward line it names. The per-expert
/// intermediates are recomputed in each pass over the experts instead of kept in scratch arrays
/// (E is a run-time size; recomputing gives the same values).
template <typename T>
struct ChainBackward {
  int64_t rows = 0, e = 0;
  // forward values
  const T *r = nullptr, *z = nullptr, *gap = nullptr, *theta = nullptr;
  const T* gamma_sum = nullptr;  // [T]
  const T* dgamma = nullptr;     // dγ/dα^q at the draws
  const T* raw = nullptr;        // [T, 2E]
  // incoming gradients, any may be null
  const T *g_r = nullptr, *g_r2 = nullptr, *g_logits = nullptr, *g_z = nullptr, *g_alpha = nullptr;
  // outputs
  T *out_linear = nullptr, *out_raw = nullptr /* [T, 2E] */, *out_logits = nullptr;
  ChainScalars<T> s;

  DIRMOE_HOST_DEVICE void run(int64_t row) const {
    const int64_t base = row * e;
    const bool has_r = g_r != nullptr || g_r2 != nullptr;
    auto g_r_at = [&](int64_t at) {  // in a __host__ __device__ function, a lambda is one too
      return (g_r != nullptr ? g_r[at] : T(0)) + (g_r2 != nullptr ? g_r2[at] : T(0));
    };
    // softmax: dv = r ⊙ (dr − Σ r·dr); then through log θ̃ and θ = γ/Σγ (dθ·θ summed)
    T r_dot = T(0), theta_dot = T(0);
    if (has_r) {
      for (int64_t i = 0; i < e; ++i) r_dot += r[base + i] * g_r_at(base + i);
      for (int64_t i = 0; i < e; ++i) theta_dot += theta_gradient(base + i, g_r_at(base + i), r_dot) * theta[base + i];
    }
    T mean = T(0);
    for (int64_t i = 0; i < e; ++i) {
      const int64_t at = base + i;
      T g_u = T(0), g_alpha_q = T(0);  // d/du (u = (ℓ + g)/τ), d/dα^q
      if (has_r) {
        const T g_v = r[at] * (g_r_at(at) - r_dot);
        g_u = g_v * (T(1) - z[at]);  // d log σ(u)/du = 1 − z̃
        // θ = γ/Σγ: dγ_i = (dθ_i − Σ_j dθ_j θ_j)/Σγ; then γ(α^q) by dγ/dα^q
        g_alpha_q = (theta_gradient(at, g_r_at(at), r_dot) - theta_dot) / gamma_sum[row] * dgamma[at];
      }
      const T g_scaled = (g_alpha_q + (g_alpha != nullptr ? g_alpha[at] : T(0))) * s.lambda_q;
      // α^q = λ^q·(softplus(lo) + a_lo + ε + z̃·(softplus(hi) + ε))
      out_raw[row * 2 * e + i] = g_scaled * softplus_slope(raw[row * 2 * e + i]);
      out_raw[row * 2 * e + e + i] = g_scaled * z[at] * softplus_slope(raw[row * 2 * e + e + i]);
      const T g_z_total = g_scaled * (gap[at] + s.alpha_eps) + (g_z != nullptr ? g_z[at] : T(0));
      const T g_u_total = g_u + g_z_total * z[at] * (T(1) - z[at]);                 // z̃ = σ(u)
      out_logits[at] = g_u_total / s.tau + (g_logits != nullptr ? g_logits[at] : T(0));  // u = (ℓ + g)/τ
      mean += out_logits[at];
    }
    // ℓ = W·x − mean_e W·x + b: the centring's gradient subtracts the mean
    mean = s.center_logits ? mean / T(e) : T(0);
    for (int64_t i = 0; i < e; ++i) out_linear[base + i] = out_logits[base + i] - mean;
  }

 private:
  /// dθ_i from dr_i: dv_i = r_i·(dr_i − Σ r·dr), through log θ̃ (θ̃ = (1 − m)·θ + m/E)
  DIRMOE_HOST_DEVICE T theta_gradient(int64_t at, T g_r_value, T r_dot) const {
    const T g_v = r[at] * (g_r_value - r_dot);
    const T mixed = s.mix ? theta[at] * s.keep + s.uniform : theta[at];
    return s.mix ? (g_v / mixed) * s.keep : g_v / mixed;
  }
};

/// The backward of both paths for one token: the LM path's (where wanted: x's gradient when the
/// losses must not reach x) and the sum of both paths' (the parameters' gradients), over the sum's rows.
template <typename T>
struct ChainBackwardPair {
  ChainBackward<T> sum, lm;
  bool with_lm;
  int64_t rows;

  ChainBackwardPair(const ChainBackward<T>& sum_pass, const ChainBackward<T>* lm_pass)
      : sum(sum_pass), lm(lm_pass != nullptr ? *lm_pass : sum_pass), with_lm(lm_pass != nullptr), rows(sum_pass.rows) {}
  DIRMOE_HOST_DEVICE void run(int64_t row) const {
    if (with_lm) lm.run(row);
    sum.run(row);
  }
};

}  // namespace dirmoe::chain_element
