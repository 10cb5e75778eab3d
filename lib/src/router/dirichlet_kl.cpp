// KL(Dir(α_q) ‖ Dir(α_p)) (dirichlet.h) as one autograd node with its closed-form backward: rows on the
// CPU's intra-op threads, or one CUDA thread per row where the build has dirmoe's CUDA kernels.
#include <cmath>
#include <vector>

#include <ATen/Dispatch.h>
#include <ATen/Parallel.h>
#include <ATen/native/Math.h>
#include <ATen/record_function.h>
#include <torch/torch.h>

#include "dirmoe/router/dirichlet.h"
#include "dirmoe/router/dirichlet_kl_element.h"
#include "dirmoe/router/element_kernels.h"

#if defined(DIRMOE_CUDA_KERNELS)
#include "dirichlet_kl_cuda.h"
#endif

namespace dirmoe {
// a named namespace: the library's sources are compiled in unity batches, where anonymous ones merge
namespace dirichlet_kl_detail {

using torch::Tensor;
using torch::autograd::AutogradContext;
using torch::autograd::variable_list;

/// The loops' grain: at most one thread per 256 rows (each row is E experts of a few special-function
/// evaluations).
constexpr int64_t kRowsPerTask = 256;

/// LibTorch's CPU special functions, as its digamma, polygamma(1, ·) and lgamma operators evaluate
/// them (calc_digamma, trigamma of ATen/native/Math.h; lnΓ as std::lgamma computes it, but through
/// glibc's reentrant lgammaf_r / lgamma_r: std::lgamma writes the global `signgam`, a data race when
/// the rows run on several threads).
struct HostSpecialFunctions {
  static float digamma(float x) { return calc_digamma(x); }
  static double digamma(double x) { return calc_digamma(x); }
  static float trigamma(float x) { return ::trigamma(x); }
  static double trigamma(double x) { return ::trigamma(x); }
  static float log_gamma(float x) {
    int sign = 0;
    return lgammaf_r(x, &sign);
  }
  static double log_gamma(double x) {
    int sign = 0;
    return lgamma_r(x, &sign);
  }
};

/// Rows on the CPU's intra-op threads, or one CUDA thread per row (dirichlet_kl_cuda.cu).
template <typename Pass>
void run_rows(const Pass& pass, const torch::Device& device) {
  if (device.is_cpu()) {
    at::parallel_for(0, pass.rows, kRowsPerTask, [&](int64_t begin, int64_t end) {
      for (int64_t row = begin; row < end; ++row) pass.template run<HostSpecialFunctions>(row);
    });
    return;
  }
#if defined(DIRMOE_CUDA_KERNELS)
  cuda_kl::launch(pass, static_cast<int>(device.index()));
#else
  TORCH_CHECK(false, "dirichlet_kl: this build has no CUDA kernels for ", device);
#endif
}

/// The closed form written as operators (every device and dtype; autograd differentiates it):
///   lnΓ(q0) − Σ lnΓ(q_i) − lnΓ(p0) + Σ lnΓ(p_i) + Σ (q_i − p_i)(ψ(q_i) − ψ(q0)),  q0 = Σ q_i, p0 = Σ p_i.
Tensor kl_operators(const Tensor& alpha_q, const Tensor& alpha_p) {
  const Tensor q0 = alpha_q.sum(-1);
  const Tensor p0 = alpha_p.sum(-1);
  return torch::lgamma(q0) - torch::lgamma(alpha_q).sum(-1) - torch::lgamma(p0) + torch::lgamma(alpha_p).sum(-1) +
         ((alpha_q - alpha_p) * (torch::digamma(alpha_q) - torch::digamma(q0).unsqueeze(-1))).sum(-1);
}

/// The same closed form as one node (dirichlet_kl_element.h has the rows' formulas and gradients):
/// rows of E on the intra-op threads, ψ and lnΓ element by element in the inputs' dtype as LibTorch's
/// CPU kernels evaluate them; on CUDA one thread per row. The forward keeps the row sums q0 and p0,
/// ψ(q_i) and ψ(q0); the backward evaluates ψ'(q_i), ψ'(q0), ψ(p_i), ψ(p0).
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
      kl_element::DirichletKlForward<T> pass;
      pass.rows = n;
      pass.e = e;
      pass.q = q.data_ptr<T>();
      pass.p = p.data_ptr<T>();
      pass.kl = kl_N.data_ptr<T>();
      pass.psi_q = psi_q_NE.data_ptr<T>();
      pass.psi_q0 = psi_q0_N.data_ptr<T>();
      pass.q0 = q0_N.data_ptr<T>();
      pass.p0 = p0_N.data_ptr<T>();
      run_rows(pass, q.device());
    });
    ctx->save_for_backward({q, p, psi_q_NE, psi_q0_N, q0_N, p0_N});
    return kl_N;
  }

  static variable_list backward(AutogradContext* ctx, variable_list grads) {
    TORCH_CHECK(!torch::GradMode::is_enabled(),
                "dirichlet_kl: its backward is not differentiable (no create_graph / double backward)");
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
      kl_element::DirichletKlBackward<T> pass;
      pass.rows = n;
      pass.e = e;
      pass.q = q.data_ptr<T>();
      pass.p = p.data_ptr<T>();
      pass.psi_q = psi_q_NE.data_ptr<T>();
      pass.psi_q0 = psi_q0_N.data_ptr<T>();
      pass.q0 = q0_N.data_ptr<T>();
      pass.p0 = p0_N.data_ptr<T>();
      pass.g = g_N.data_ptr<T>();
      pass.g_q = want_q ? g_q.data_ptr<T>() : nullptr;
      pass.g_p = want_p ? g_p.data_ptr<T>() : nullptr;
      run_rows(pass, q.device());
    });
    return {g_q, g_p};
  }
};

}  // namespace dirichlet_kl_detail

torch::Tensor dirichlet_kl(const torch::Tensor& alpha_q, const torch::Tensor& alpha_p) {
  using dirichlet_kl_detail::DirichletKl;
  using dirichlet_kl_detail::kl_operators;
  const auto dtype = alpha_q.scalar_type();
  const bool loops = element_passes_on(alpha_q.device()) && alpha_p.device() == alpha_q.device() && alpha_q.dim() >= 1 &&
                     alpha_q.sizes() == alpha_p.sizes() && alpha_p.scalar_type() == dtype &&
                     (dtype == torch::kFloat32 || dtype == torch::kFloat64) && alpha_q.size(-1) > 0;
  if (!loops) return kl_operators(alpha_q, alpha_p);
  RECORD_FUNCTION("dirmoe::dirichlet_kl", std::vector<c10::IValue>());
  return DirichletKl::apply(alpha_q, alpha_p);
}

}  // namespace dirmoe
