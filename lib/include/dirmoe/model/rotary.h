#pragma once
// Rotary position embedding (Su et al. 2021, RoFormer §3.4), "rotate-half" layout: the head
// dimension d is split into halves (x1, x2) and pair (x1_i, x2_i) at position t is rotated by the
// angle t·θ^(−2i/d), i = 0..d/2−1:
//   y = x ⊙ cos + rotate_half(x) ⊙ sin,  rotate_half(x) = (−x2, x1),
// with cos/sin of the angles repeated over both halves.
#include <cstdint>
#include <utility>

#include <torch/types.h>

namespace dirmoe {

/// cos and sin tables, each (T, d_head), computed in float64 and cast to `options`' dtype.
std::pair<torch::Tensor, torch::Tensor> rotary_tables(int64_t seq_len, int64_t d_head, double theta,
                                                      const torch::TensorOptions& options);

/// Rotates x_BHTd (B, H, T, d_head) by the tables of rotary_tables(T, d_head, …).
torch::Tensor apply_rotary(const torch::Tensor& x_BHTd, const torch::Tensor& cos_Td, const torch::Tensor& sin_Td);

}  // namespace dirmoe
