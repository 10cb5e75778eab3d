#include "dirmoe/model/rms_norm.h"

namespace dirmoe {

RmsNormImpl::RmsNormImpl(int64_t dim, double eps) : eps_(eps) {
  weight = register_parameter("weight", torch::ones({dim}));
}

torch::Tensor RmsNormImpl::forward(const torch::Tensor& x) {
  const bool low_precision = x.scalar_type() == torch::kBFloat16 || x.scalar_type() == torch::kHalf;
  const torch::Tensor xf = low_precision ? x.to(torch::kFloat32) : x;
  const torch::Tensor normed = xf * torch::rsqrt(xf.pow(2).mean(-1, /*keepdim=*/true) + eps_);
  return normed.to(x.scalar_type()) * weight.to(x.scalar_type());
}

}  // namespace dirmoe
