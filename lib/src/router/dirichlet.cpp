#include "dirmoe/router/dirichlet.h"

#include <cmath>

#include <torch/torch.h>

#include "dirmoe/core/intra_op_parallel.h"

namespace dirmoe {
namespace {

/// dγ/dα given by the caller, or undefined. A struct, not a Tensor argument: autograd::Function
/// records every Tensor argument as an input, and an undefined one has no device to record.
struct GivenSampleGrad {
  torch::Tensor value;
};

/// The Gamma draw as an autograd node: forward returns the (given or fresh) draws, backward
/// multiplies by the implicit derivative dγ/dα (given, or evaluated at the saved α and sample).
class GammaReparam : public torch::autograd::Function<GammaReparam> {
 public:
  static torch::Tensor forward(torch::autograd::AutogradContext* ctx, const torch::Tensor& alpha,
                               const torch::Tensor& draws, const GivenSampleGrad& given) {
    const torch::Tensor sample = draws.to(alpha.dtype()).clone();
    if (given.value.defined()) {
      ctx->save_for_backward({given.value});
    } else {
      ctx->save_for_backward({alpha.detach(), sample});
    }
    return sample;
  }

  static torch::autograd::variable_list backward(torch::autograd::AutogradContext* ctx,
                                                 torch::autograd::variable_list grad_outputs) {
    const auto saved = ctx->get_saved_variables();
    const torch::Tensor dsample_dalpha = saved.size() == 1 ? saved[0] : gamma_sample_grad(saved[0], saved[1]);
    return {grad_outputs[0] * dsample_dalpha, torch::Tensor(), torch::Tensor()};
  }
};

}  // namespace

torch::Tensor gamma_sample_grad(const torch::Tensor& alpha, const torch::Tensor& sample) {
  torch::NoGradGuard no_grad;
  if (alpha.device().is_cpu() && (alpha.scalar_type() == torch::kFloat32 || alpha.scalar_type() == torch::kFloat64)) {
    // NOTE: LibTorch's CPU kernel runs on one thread (at d512 a layer's 16,384 values took 0.5 ms);
    // blocks of it on the intra-op threads give the same values, element by element.
    const torch::Tensor alpha_flat = alpha.detach().contiguous().view(-1);
    const torch::Tensor sample_flat = sample.detach().to(alpha.scalar_type()).contiguous().view(-1);
    constexpr int64_t kBlock = 4096;
    if (alpha_flat.numel() < 2 * kBlock) return at::_standard_gamma_grad(alpha_flat, sample_flat).view(alpha.sizes());
    const torch::Tensor out_flat = torch::empty_like(alpha_flat);
    parallel_for_with_caller_state(0, alpha_flat.numel(), kBlock, [&](int64_t begin, int64_t end) {
      out_flat.narrow(0, begin, end - begin)
          .copy_(at::_standard_gamma_grad(alpha_flat.narrow(0, begin, end - begin), sample_flat.narrow(0, begin, end - begin)));
    });
    return out_flat.view(alpha.sizes());
  }
  // the sample rounded to α's dtype first, as the forward returns it
  return at::_standard_gamma_grad(alpha.detach().to(torch::kFloat64),
                                  sample.detach().to(alpha.scalar_type()).to(torch::kFloat64))
      .to(alpha.scalar_type());
}

torch::Tensor gamma_reparam(const torch::Tensor& alpha, const torch::Tensor& draws, const torch::Tensor& dsample_dalpha) {
  TORCH_CHECK(!dsample_dalpha.defined() || dsample_dalpha.sizes() == alpha.sizes(), "gamma_reparam: dsample_dalpha has shape ",
              dsample_dalpha.sizes(), " but alpha has ", alpha.sizes());
  if (!draws.defined()) {
    TORCH_CHECK(!dsample_dalpha.defined(), "gamma_reparam: dsample_dalpha given without the draws it belongs to");
    return GammaReparam::apply(alpha, at::_standard_gamma(alpha.detach()), GivenSampleGrad{});  // clamped to the smallest normal
  }
  TORCH_CHECK(draws.sizes() == alpha.sizes(), "gamma_reparam: draws have shape ", draws.sizes(), " but alpha has ",
              alpha.sizes());
  return GammaReparam::apply(
      alpha, draws.detach(),
      GivenSampleGrad{dsample_dalpha.defined() ? dsample_dalpha.detach().to(alpha.scalar_type()) : torch::Tensor()});
}

torch::Tensor dirichlet_reparam(const torch::Tensor& alpha, const torch::Tensor& draws, const torch::Tensor& dsample_dalpha) {
  const torch::Tensor gamma = gamma_reparam(alpha, draws, dsample_dalpha);
  return gamma / gamma.sum(-1, /*keepdim=*/true);
}

torch::Tensor bernoulli_kl(const torch::Tensor& logits, double prior_pi) {
  TORCH_CHECK(prior_pi > 0.0 && prior_pi < 1.0, "bernoulli_kl: prior_pi must be in (0, 1), got ", prior_pi);
  const torch::Tensor log_q = torch::log_sigmoid(logits);
  const torch::Tensor log_1mq = torch::log_sigmoid(-logits);
  return log_q.exp() * (log_q - std::log(prior_pi)) + log_1mq.exp() * (log_1mq - std::log1p(-prior_pi));
}

}  // namespace dirmoe
