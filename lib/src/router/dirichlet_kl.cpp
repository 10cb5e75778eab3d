// KL(Dir(α_q) ‖ Dir(α_p)) (dirichlet.h), on the CPU as one autograd node with its closed-form backward.
#include <cmath>
#include <vector>

#include <ATen/Dispatch.h>
#include <ATen/Parallel.h>
#include <ATen/native/Math.h>
#include <ATen/record_function.h>
#include <torch/torch.h>

#include "dirmoe/router/dirichlet.h"

namespace dirmoe {
// a named namespace: the library's sources are compiled in unity batches, where anonymous ones merge
namespace dirichlet_kl_detail {

using torch::Tensor;
using torch::autograd::AutogradContext;
using torch::autograd::variable_list;

/// The loops' grain: at most one thread per 256 rows (each row is E experts of a few special-function
/// evaluations).
constexpr int64_t kRowsPerTask = 256;

/// lnΓ(x) as std::lgamma computes it, without writing the global `signgam` (std::lgamma does, a data
/// race when the rows run on several threads): glibc's reentrant lgammaf_r / lgamma_r.
inline float log_gamma(float x) {
  int sign = 0;
  return lgammaf_r(x, &sign);
}
inline double log_gamma(double x) {
  int sign = 0;
  return lgamma_r(x, &sign);
}

/// The closed form written as operators (every device and dtype; autograd differentiates it):
///   lnΓ(q0) − Σ lnΓ(q_i) − lnΓ(p0) + Σ lnΓ(p_i) + Σ (q_i − p_i)(ψ(q_i) − ψ(q0)),  q0 = Σ q_i, p0 = Σ p_i.
Tensor kl_operators(const Tensor& alpha_q, const Tensor& alpha_p) {
  const Tensor q0 = alpha_q.sum(-1);
  const Tensor p0 = alpha_p.sum(-1);
  return torch::lgamma(q0) - torch::lgamma(alpha_q).sum(-1) - torch::lgamma(p0) + torch::lgamma(alpha_p).sum(-1) +
         ((alpha_q - alpha_p) * (torch::digamma(alpha_q) - torch::digamma(q0).unsqueeze(-1))).sum(-1);
}

/// The same closed form as one node, rows of E on the intra-op threads.
/// ψ and lnΓ element by element in the inputs' dtype, as LibTorch's CPU kernels evaluate them
/// (calc_digamma, trigamma of ATen/native/Math.h; lnΓ as std::lgamma); each row's sums in double.
/// Backward, with g the incoming gradient of a row's KL:
///   ∂KL/∂q_i = (q_i − p_i)·ψ'(q_i) − ψ'(q0)·(q0 − p0)
///   ∂KL/∂p_i = ψ(p_i) − ψ(p0) − ψ(q_i) + ψ(q0)
/// (the lnΓ terms give ψ(q0) − ψ(q_i), which cancels the ψ(q_i) − ψ(q0) of differentiating the factor
/// q_i − p_i). The forward keeps the row sums q0 and p0, ψ(q_i) and ψ(q0); the backward evaluates
/// ψ'(q_i), ψ'(q0), ψ(p_i), ψ(p0).
/// NOTE: at d512 (16,384 values per layer) LibTorch's digamma, lgamma and polygamma kernels ran on one
/// thread (below their grain), and autograd's graph of the formula ran six digamma, two polygamma and
/// four lgamma kernels per pass: 1.59 ms forward+backward against 0.68 for this node (bench/README.md,
/// "Fourth round").
class DirichletKl : public torch::autograd::Function<DirichletKl> {
 public:
  static Tensor forward(AutogradContext* ctx, const Tensor& alpha_q_NE, const Tensor& alpha_p_NE) {
    const Tensor q = alpha_q_NE.contiguous(), p = alpha_p_NE.contiguous();
    const int64_t e = q.size(-1), n = q.numel() / e;
    const Tensor kl_N = torch::empty(q.sizes().slice(0, q.dim() - 1), q.options());
    const Tensor psi_q_NE = torch::empty_like(q);
    const Tensor psi_q0_N = torch::empty_like(kl_N);
    const Tensor q0_N = torch::empty_like(kl_N), p0_N = torch::empty_like(kl_N);  // the row sums, rounded to T
    AT_DISPATCH_FLOATING_TYPES(q.scalar_type(), "dirichlet_kl", [&] {
      using T = scalar_t;
      const T *qd = q.data_ptr<T>(), *pd = p.data_ptr<T>();
      T *kl = kl_N.data_ptr<T>(), *psi_q = psi_q_NE.data_ptr<T>(), *psi_q0 = psi_q0_N.data_ptr<T>();
      T *q0_out = q0_N.data_ptr<T>(), *p0_out = p0_N.data_ptr<T>();
      at::parallel_for(0, n, kRowsPerTask, [&](int64_t begin, int64_t end) {
        for (int64_t row = begin; row < end; ++row) {
          const T *qr = qd + row * e, *pr = pd + row * e;
          double q0_sum = 0.0, p0_sum = 0.0;
          for (int64_t i = 0; i < e; ++i) {
            q0_sum += qr[i];
            p0_sum += pr[i];
          }
          const T q0 = static_cast<T>(q0_sum), p0 = static_cast<T>(p0_sum);
          const T psi0 = calc_digamma(q0);
          double sum = static_cast<double>(log_gamma(q0)) - log_gamma(p0);
          for (int64_t i = 0; i < e; ++i) {
            const T psi = calc_digamma(qr[i]);
            psi_q[row * e + i] = psi;
            sum += static_cast<double>(log_gamma(pr[i])) - log_gamma(qr[i]) +
                   (static_cast<double>(qr[i]) - pr[i]) * (static_cast<double>(psi) - psi0);
          }
          psi_q0[row] = psi0;
          q0_out[row] = q0;
          p0_out[row] = p0;
          kl[row] = static_cast<T>(sum);
        }
      });
    });
    ctx->save_for_backward({q, p, psi_q_NE, psi_q0_N, q0_N, p0_N});
    return kl_N;
  }

  static variable_list backward(AutogradContext* ctx, variable_list grads) {
    TORCH_CHECK(!torch::GradMode::is_enabled(),
                "dirichlet_kl: its CPU backward is not differentiable (no create_graph / double backward)");
    const auto saved = ctx->get_saved_variables();
    const Tensor &q = saved[0], &p = saved[1], &psi_q_NE = saved[2], &psi_q0_N = saved[3];
    const Tensor &q0_N = saved[4], &p0_N = saved[5];
    const Tensor g_N = grads[0].contiguous();
    const bool want_q = ctx->needs_input_grad(0), want_p = ctx->needs_input_grad(1);
    const int64_t e = q.size(-1), n = q.numel() / e;
    Tensor g_q, g_p;
    if (want_q) g_q = torch::empty_like(q);
    if (want_p) g_p = torch::empty_like(p);
    AT_DISPATCH_FLOATING_TYPES(q.scalar_type(), "dirichlet_kl_backward", [&] {
      using T = scalar_t;
      const T *qd = q.data_ptr<T>(), *pd = p.data_ptr<T>(), *psi_q = psi_q_NE.data_ptr<T>();
      const T *psi_q0 = psi_q0_N.data_ptr<T>(), *g = g_N.data_ptr<T>();
      const T *q0_in = q0_N.data_ptr<T>(), *p0_in = p0_N.data_ptr<T>();
      T* gq = want_q ? g_q.data_ptr<T>() : nullptr;
      T* gp = want_p ? g_p.data_ptr<T>() : nullptr;
      at::parallel_for(0, n, kRowsPerTask, [&](int64_t begin, int64_t end) {
        for (int64_t row = begin; row < end; ++row) {
          const T *qr = qd + row * e, *pr = pd + row * e;
          const T q0 = q0_in[row], p0 = p0_in[row];
          const T gr = g[row];
          if (gq != nullptr) {
            const T common = trigamma(q0) * (q0 - p0);
            for (int64_t i = 0; i < e; ++i) gq[row * e + i] = gr * ((qr[i] - pr[i]) * trigamma(qr[i]) - common);
          }
          if (gp != nullptr) {
            const T common = psi_q0[row] - calc_digamma(p0);
            for (int64_t i = 0; i < e; ++i) {
              gp[row * e + i] = gr * (calc_digamma(pr[i]) - psi_q[row * e + i] + common);
            }
          }
        }
      });
    });
    return {g_q, g_p};
  }
};

}  // namespace dirichlet_kl_detail

torch::Tensor dirichlet_kl(const torch::Tensor& alpha_q, const torch::Tensor& alpha_p) {
  using dirichlet_kl_detail::DirichletKl;
  using dirichlet_kl_detail::kl_operators;
  const auto dtype = alpha_q.scalar_type();
  const bool loops = alpha_q.device().is_cpu() && alpha_p.device().is_cpu() && alpha_q.dim() >= 1 &&
                     alpha_q.sizes() == alpha_p.sizes() && alpha_p.scalar_type() == dtype &&
                     (dtype == torch::kFloat32 || dtype == torch::kFloat64) && alpha_q.size(-1) > 0;
  if (!loops) return kl_operators(alpha_q, alpha_p);
  RECORD_FUNCTION("dirmoe::dirichlet_kl", std::vector<c10::IValue>());
  return DirichletKl::apply(alpha_q, alpha_p);
}

}  // namespace dirmoe
