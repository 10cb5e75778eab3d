#pragma once
// SwiGLU feed-forward experts (Shazeer 2020, "GLU Variants Improve Transformer", eq. 6 without
// biases):  FFN(x) = (silu(x·W_gate) ⊙ (x·W_up))·W_down.
// E experts are stored stacked so they can run as one grouped GEMM.
#include <cstdint>

#include <torch/nn/module.h>
#include <torch/nn/pimpl.h>
#include <torch/types.h>

namespace dirmoe {

/// One dense SwiGLU FFN on rows x_ND: (silu(x·W_gate) ⊙ (x·W_up))·W_down.
torch::Tensor swiglu(const torch::Tensor& x_ND, const torch::Tensor& w_gate_DF, const torch::Tensor& w_up_DF,
                     const torch::Tensor& w_down_FD);

/// E SwiGLU experts over rows sorted by expert.
///
/// forward(x_ND, tokens_per_expert_E): rows [start_e, start_e + n_e) of x_ND belong to expert e
/// (start_e = Σ_{e'<e} n_e'). On CUDA in bf16 (autocast on, or bf16 rows; unless disabled) the
/// experts run as grouped GEMMs (`at::_grouped_mm`, each group padded to a multiple of 8 rows, int32
/// cumulative offsets); on the CPU as the fused segment path (forward_fused); otherwise (CUDA fp32)
/// as the loop, which is also the reference.
class SwigluExpertsImpl : public torch::nn::Module {
 public:
  /// Weights drawn from N(0, init_std²).
  SwigluExpertsImpl(int64_t n_experts, int64_t d_model, int64_t d_ff, double init_std);

  torch::Tensor forward(const torch::Tensor& x_ND, const torch::Tensor& tokens_per_expert_E);
  /// The per-expert loop (any device, any dtype); copies tokens_per_expert_E to the host.
  torch::Tensor forward_loop(const torch::Tensor& x_ND, const torch::Tensor& tokens_per_expert_E);
  /// The grouped-GEMM path (CUDA, bf16 compute, output in x_ND's dtype). No host synchronisation.
  torch::Tensor forward_grouped(const torch::Tensor& x_ND, const torch::Tensor& tokens_per_expert_E);
  /// The loop's GEMMs as one autograd node over all experts (any device, any dtype; copies
  /// tokens_per_expert_E to the host): every expert's rows are computed into one preallocated
  /// buffer, and the backward writes each expert's weight gradients straight into the (E, D, F)
  /// gradient, where the loop's autograd graph would concatenate outputs and stack gradients.
  torch::Tensor forward_fused(const torch::Tensor& x_ND, const torch::Tensor& tokens_per_expert_E);

  /// false: use the loop on CUDA in bf16 too (debugging).
  void set_grouped_gemm(bool enabled) { grouped_gemm_ = enabled; }
  /// false: the CPU runs forward_loop instead of forward_fused (benchmarks compare the two).
  void set_fused(bool enabled) { fused_ = enabled; }

  torch::Tensor w_gate;  // (E, D, F)
  torch::Tensor w_up;    // (E, D, F)
  torch::Tensor w_down;  // (E, F, D)

 private:
  bool grouped_gemm_ = true;
  bool fused_ = true;
};
TORCH_MODULE(SwigluExperts);

}  // namespace dirmoe
