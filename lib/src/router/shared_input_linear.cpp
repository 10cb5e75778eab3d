#include "dirmoe/router/shared_input_linear.h"

#include <torch/torch.h>

namespace dirmoe {
namespace {

/// Inputs: x_TD, then the weights [out_i, D]. Outputs: y_lm [T, Σ out_i] and y_loss (the same
/// values; a separate tensor so that autograd keeps the two gradients apart).
class SharedInputLinear : public torch::autograd::Function<SharedInputLinear> {
 public:
  static torch::autograd::variable_list forward(torch::autograd::AutogradContext* ctx, const torch::Tensor& x_TD,
                                                const torch::Tensor& weight_OD) {
    const torch::Tensor y_TO = torch::matmul(x_TD, weight_OD.t());
    ctx->save_for_backward({x_TD, weight_OD});
    return {y_TO, y_TO.clone()};
  }

  static torch::autograd::variable_list backward(torch::autograd::AutogradContext* ctx,
                                                 torch::autograd::variable_list grad_outputs) {
    const auto saved = ctx->get_saved_variables();
    const torch::Tensor& x_TD = saved[0];
    const torch::Tensor& weight_OD = saved[1];
    const torch::Tensor& g_lm_TO = grad_outputs[0];
    const torch::Tensor& g_loss_TO = grad_outputs[1];
    // NOTE: in the gradient's dtype, cast back to each input's: under bf16 autocast the forward's
    // product was bf16 (autocast casts matmul's operands), but autocast is off in backward.
    torch::Tensor g_sum_TO = g_lm_TO.defined() ? g_lm_TO : g_loss_TO;
    if (g_lm_TO.defined() && g_loss_TO.defined()) g_sum_TO = g_lm_TO + g_loss_TO.to(g_lm_TO.scalar_type());
    torch::Tensor g_x_TD, g_weight_OD;
    if (g_lm_TO.defined() && ctx->needs_input_grad(0)) {
      g_x_TD = torch::matmul(g_lm_TO, weight_OD.to(g_lm_TO.scalar_type())).to(x_TD.scalar_type());
    }
    if (g_sum_TO.defined() && ctx->needs_input_grad(1)) {
      g_weight_OD = torch::matmul(g_sum_TO.t(), x_TD.to(g_sum_TO.scalar_type())).to(weight_OD.scalar_type());
    }
    return {g_x_TD, g_weight_OD};
  }
};

}  // namespace

std::vector<torch::Tensor> shared_input_linear(const torch::Tensor& x_TD, const std::vector<torch::Tensor>& weights,
                                               bool detached_path) {
  TORCH_CHECK(x_TD.dim() == 2 && !weights.empty(), "shared_input_linear: expects x of shape (T, D) and weights");
  // NOTE: the concatenation copies Σ out_i × D weights per call (264 × 512 floats for DirMoE's gate and
  // α hidden layer at d512); its backward splits the gradient back to each weight.
  const torch::Tensor weight_OD = weights.size() == 1 ? weights[0] : torch::cat(weights, 0);
  if (!detached_path) return {torch::matmul(x_TD, weight_OD.t()), torch::Tensor()};
  return SharedInputLinear::apply(x_TD, weight_OD);
}

}  // namespace dirmoe
