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
/// the decoder output, the difference and its square, and reads them again backward.
///
/// Precision: the terms cancel as far as the decoder reproduces x, so the float32 error grows as
/// ε₃₂·‖x_t‖²/‖x_t − (W r_t + b)‖². Measured against the float64 definition (T = 256, D = 128,
/// E = 8; tests/unit/test_router_reconstruction_loss.cpp), value and gradients: 2e-7 for a random
/// decoder, 3e-6 once it has fitted x up to a residual of 0.3 per feature, 6e-5 with a common offset
/// of 30 learned by b, 4e-4 at a residual of 0.01 per feature — a fit that E routing weights cannot
/// give D features (the 300-step tiny DirMoE runs keep the residual at 73–82% of ‖x‖²), and still ten
/// times below the 4e-3 to which bf16 training rounds every activation. x is taken in its own
/// dtype with autocast off.
torch::Tensor reconstruction_mse(const torch::Tensor& x_TD, const torch::Tensor& r_TE, const torch::Tensor& weight_DE,
                                 const torch::Tensor& bias_D);

}  // namespace dirmoe
