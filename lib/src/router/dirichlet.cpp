#include "dirmoe/router/dirichlet.h"

#include <cmath>

#include <torch/torch.h>

namespace dirmoe {
namespace {

/// The Gamma draw as an autograd node: forward returns the (given or fresh) draws, backward
/// multiplies by the implicit derivative dγ/dα.
class GammaReparam : public torch::autograd::Function<GammaReparam> {
 public:
  static torch::Tensor forward(torch::autograd::AutogradContext* ctx, const torch::Tensor& alpha,
                               const torch::Tensor& draws) {
    const torch::Tensor sample = draws.to(alpha.dtype()).clone();
    ctx->save_for_backward({alpha.detach(), sample});
    return sample;
  }

  static torch::autograd::variable_list backward(torch::autograd::AutogradContext* ctx,
                                                 torch::autograd::variable_list grad_outputs) {
    const auto saved = ctx->get_saved_variables();
    const torch::Tensor& alpha = saved[0];
    const torch::Tensor& sample = saved[1];
    // NOTE: in float64 on every device. The CPU kernel of _standard_gamma_grad accumulates in
    // double, the CUDA one in the input's type; in float32 its series and asymptotic branches lose
    // digits away from the mode, and CUDA's DirMoE gradients then differ from the CPU's by up to
    // 28% (relative L2, tests/gpu/test_gpu_routers.cpp on an H200). T·E elements: negligible cost.
    const torch::Tensor dsample_dalpha =
        at::_standard_gamma_grad(alpha.to(torch::kFloat64), sample.to(torch::kFloat64)).to(alpha.scalar_type());
    return {grad_outputs[0] * dsample_dalpha, torch::Tensor()};
  }
};

}  // namespace

torch::Tensor gamma_reparam(const torch::Tensor& alpha, const torch::Tensor& draws) {
  if (!draws.defined()) {
    return GammaReparam::apply(alpha, at::_standard_gamma(alpha.detach()));  // clamped to the smallest normal
  }
  TORCH_CHECK(draws.sizes() == alpha.sizes(), "gamma_reparam: draws have shape ", draws.sizes(), " but alpha has ",
              alpha.sizes());
  return GammaReparam::apply(alpha, draws.detach());
}

torch::Tensor dirichlet_reparam(const torch::Tensor& alpha, const torch::Tensor& draws) {
  const torch::Tensor gamma = gamma_reparam(alpha, draws);
  return gamma / gamma.sum(-1, /*keepdim=*/true);
}

torch::Tensor dirichlet_kl(const torch::Tensor& alpha_q, const torch::Tensor& alpha_p) {
  const torch::Tensor q0 = alpha_q.sum(-1);
  const torch::Tensor p0 = alpha_p.sum(-1);
  return torch::lgamma(q0) - torch::lgamma(alpha_q).sum(-1) - torch::lgamma(p0) + torch::lgamma(alpha_p).sum(-1) +
         ((alpha_q - alpha_p) * (torch::digamma(alpha_q) - torch::digamma(q0).unsqueeze(-1))).sum(-1);
}

torch::Tensor bernoulli_kl(const torch::Tensor& logits, double prior_pi) {
  TORCH_CHECK(prior_pi > 0.0 && prior_pi < 1.0, "bernoulli_kl: prior_pi must be in (0, 1), got ", prior_pi);
  const torch::Tensor log_q = torch::log_sigmoid(logits);
  const torch::Tensor log_1mq = torch::log_sigmoid(-logits);
  return log_q.exp() * (log_q - std::log(prior_pi)) + log_1mq.exp() * (log_1mq - std::log1p(-prior_pi));
}

}  // namespace dirmoe
