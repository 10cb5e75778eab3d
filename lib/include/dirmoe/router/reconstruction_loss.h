#pragma once
// DirMoE's reconstruction term (the router's decoder E → D), computed without the [T, D] decoder
// output.
#include <torch/types.h>

namespace dirmoe {

/// Σ_t ‖x_t − (W r_t + b)‖² / T: the mean squared error of decoding the routing weights r_TE (T, E)
/// with the linear decoder weight_DE (D, E), bias_D (D) against x_TD (T, D), which gets no
/// gradient (the caller passes it detached). Expanded per token as
///   ‖x_t‖² − 2·r_tᵀ(Wᵀx_t) − 2·bᵀx_t + r_tᵀ(WᵀW)r_t + 2·r_tᵀ(Wᵀb) + ‖b‖²,
/// so x is read by one [E + 1, D]·[D, T] product with [W | b] (and once more by that product's
/// weight gradient and once by ‖x_t‖²), and nothing of size T·D is written: the direct form writes
/// the decoder output, the difference and its square, and reads them again backward. The terms
/// cancel where the reconstruction is close (the error is then about float32's ε·‖x_t‖² per token);
/// DirMoE decodes D features from E routing weights, so the residual stays a large part of ‖x_t‖²
/// (tests/unit/test_router_reconstruction_loss.cpp bounds the difference from the direct form).
torch::Tensor reconstruction_mse(const torch::Tensor& x_TD, const torch::Tensor& r_TE, const torch::Tensor& weight_DE,
                                 const torch::Tensor& bias_D);

}  // namespace dirmoe
