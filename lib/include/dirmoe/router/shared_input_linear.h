#pragma once
// Several linear maps of one input in one GEMM, read by two paths: the language-model path, whose
// gradient reaches the input, and a loss path whose gradient stops at the input but still reaches
// the weights (the DirMoE router's aux_detach_input, H8 in docs/dirmoe.md). Computing
// linear(x) and linear(x.detach()) separately gives the same values and gradients with twice the
// forward GEMM and one more weight-gradient GEMM; this node does one of each.
#include <vector>

#include <torch/types.h>

namespace dirmoe {

/// y = x_TD · [W_1; …; W_n]ᵀ, with no bias: [T, Σ out_i]. Returned twice, as {y_lm, y_loss}:
/// backward gives x the gradient of y_lm only (g_lm · W) and W the sum over both
/// ((g_lm + g_loss)ᵀ · x). With `detached_path` false the second output is left undefined and
/// the node is a plain linear map. The weights' gradients are split back per weight.
std::vector<torch::Tensor> shared_input_linear(const torch::Tensor& x_TD, const std::vector<torch::Tensor>& weights,
                                               bool detached_path);

}  // namespace dirmoe
