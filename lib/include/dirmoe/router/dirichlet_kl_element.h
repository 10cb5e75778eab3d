#pragma once
// One row of KL(Dir(α_q) ‖ Dir(α_p)) (dirichlet.h) and of its closed-form gradient, written once for
// the host and for CUDA device code: the CPU node (dirichlet_kl.cpp, rows on the intra-op threads) and
// the CUDA kernels (dirichlet_kl_cuda.cu, one thread per row) run these same functions. The special
// functions come from `Special`, a type with static digamma, trigamma and log_gamma for float and
// double, a template argument of run(): LibTorch's CPU functions on the host (so the CPU node computes
// what torch's operators do), special_functions.h and CUDA's lgamma on the device.
//   KL = lnΓ(q0) − Σ lnΓ(q_i) − lnΓ(p0) + Σ lnΓ(p_i) + Σ (q_i − p_i)(ψ(q_i) − ψ(q0)),  q0 = Σ q_i, p0 = Σ p_i,
//   ∂KL/∂q_i = (q_i − p_i)·ψ′(q_i) − ψ′(q0)·(q0 − p0),   ∂KL/∂p_i = ψ(p_i) − ψ(p0) − ψ(q_i) + ψ(q0)
// (the lnΓ terms give ψ(q0) − ψ(q_i), which cancels the ψ(q_i) − ψ(q0) of differentiating the factor
// q_i − p_i). Each row's sums run in double; the special functions in the inputs' dtype.
#include <cstdint>

#include "dirmoe/core/philox_rounds.h"  // DIRMOE_HOST_DEVICE

namespace dirmoe::kl_element {

/// Forward of one row of E: the KL, and what the backward reads (ψ(q_i), ψ(q0), q0, p0).
template <typename T>
struct DirichletKlForward {
  int64_t rows = 0, e = 0;
  const T *q = nullptr, *p = nullptr;  // [N, E], contiguous
  T* kl = nullptr;                     // [N]
  T* psi_q = nullptr;                  // [N, E]
  T *psi_q0 = nullptr, *q0 = nullptr, *p0 = nullptr;  // [N]; the row sums rounded to T

  template <typename Special>
  DIRMOE_HOST_DEVICE void run(int64_t row) const {
    const T *qr = q + row * e, *pr = p + row * e;
    double q0_sum = 0.0, p0_sum = 0.0;
    for (int64_t i = 0; i < e; ++i) {
      q0_sum += qr[i];
      p0_sum += pr[i];
    }
    const T q0_row = static_cast<T>(q0_sum), p0_row = static_cast<T>(p0_sum);
    const T psi0 = Special::digamma(q0_row);
    double sum = static_cast<double>(Special::log_gamma(q0_row)) - Special::log_gamma(p0_row);
    for (int64_t i = 0; i < e; ++i) {
      const T psi = Special::digamma(qr[i]);
      psi_q[row * e + i] = psi;
      sum += static_cast<double>(Special::log_gamma(pr[i])) - Special::log_gamma(qr[i]) +
             (static_cast<double>(qr[i]) - pr[i]) * (static_cast<double>(psi) - psi0);
    }
    psi_q0[row] = psi0;
    q0[row] = q0_row;
    p0[row] = p0_row;
    kl[row] = static_cast<T>(sum);
  }
};

/// Backward of one row: g_q and g_p (either may be null: not wanted) from the row's incoming g.
template <typename T>
struct DirichletKlBackward {
  int64_t rows = 0, e = 0;
  const T *q = nullptr, *p = nullptr, *psi_q = nullptr;          // [N, E]
  const T *psi_q0 = nullptr, *q0 = nullptr, *p0 = nullptr;       // [N]
  const T* g = nullptr;                                          // [N]
  T *g_q = nullptr, *g_p = nullptr;                              // [N, E]

  template <typename Special>
  DIRMOE_HOST_DEVICE void run(int64_t row) const {
    const T *qr = q + row * e, *pr = p + row * e;
    const T q0_row = q0[row], p0_row = p0[row];
    const T gr = g[row];
    if (g_q != nullptr) {
      const T common = Special::trigamma(q0_row) * (q0_row - p0_row);
      for (int64_t i = 0; i < e; ++i) g_q[row * e + i] = gr * ((qr[i] - pr[i]) * Special::trigamma(qr[i]) - common);
    }
    if (g_p != nullptr) {
      const T common = psi_q0[row] - Special::digamma(p0_row);
      for (int64_t i = 0; i < e; ++i) g_p[row * e + i] = gr * (Special::digamma(pr[i]) - psi_q[row * e + i] + common);
    }
  }
};

}  // namespace dirmoe::kl_element
