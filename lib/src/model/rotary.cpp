#include "dirmoe/model/rotary.h"

#include <torch/torch.h>

namespace dirmoe {

std::pair<torch::Tensor, torch::Tensor> rotary_tables(int64_t seq_len, int64_t d_head, double theta,
                                                      const torch::TensorOptions& options) {
  TORCH_CHECK(d_head % 2 == 0, "rotary embeddings need an even head dimension, got ", d_head);
  const auto f64 = torch::TensorOptions().dtype(torch::kFloat64).device(options.device());
  const torch::Tensor i_h = torch::arange(d_head / 2, f64);
  const torch::Tensor inv_freq_h = torch::pow(theta, -2.0 * i_h / static_cast<double>(d_head));
  const torch::Tensor angle_Th = torch::outer(torch::arange(seq_len, f64), inv_freq_h);
  const torch::Tensor angle_Td = torch::cat({angle_Th, angle_Th}, -1);
  return {angle_Td.cos().to(options.dtype()), angle_Td.sin().to(options.dtype())};
}

torch::Tensor apply_rotary(const torch::Tensor& x_BHTd, const torch::Tensor& cos_Td, const torch::Tensor& sin_Td) {
  const int64_t half = x_BHTd.size(-1) / 2;
  const torch::Tensor x1 = x_BHTd.narrow(-1, 0, half);
  const torch::Tensor x2 = x_BHTd.narrow(-1, half, half);
  const torch::Tensor rotated = torch::cat({-x2, x1}, -1);
  return x_BHTd * cos_Td + rotated * sin_Td;
}

}  // namespace dirmoe
