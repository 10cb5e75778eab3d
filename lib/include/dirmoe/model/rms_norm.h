#pragma once
// RMSNorm (Zhang & Sennrich 2019, "Root Mean Square Layer Normalization", eq. 4):
//   y = x / sqrt(mean_d(x_d²) + eps) ⊙ g,   g initialised to 1, no bias.
#include <cstdint>

#include <torch/nn/module.h>
#include <torch/nn/pimpl.h>
#include <torch/types.h>

namespace dirmoe {

/// RMSNorm over the last dimension. Half-precision inputs are normalised in float32 and cast back.
class RmsNormImpl : public torch::nn::Module {
 public:
  RmsNormImpl(int64_t dim, double eps);
  torch::Tensor forward(const torch::Tensor& x);

  torch::Tensor weight;  // (D) gain g

 private:
  double eps_;
};
TORCH_MODULE(RmsNorm);

}  // namespace dirmoe
