#include "dirmoe/model/swiglu_experts.h"

#include <vector>

#include <torch/torch.h>

namespace dirmoe {

torch::Tensor swiglu(const torch::Tensor& x_ND, const torch::Tensor& w_gate_DF, const torch::Tensor& w_up_DF,
                     const torch::Tensor& w_down_FD) {
  return torch::matmul(torch::silu(torch::matmul(x_ND, w_gate_DF)) * torch::matmul(x_ND, w_up_DF), w_down_FD);
}

SwigluExpertsImpl::SwigluExpertsImpl(int64_t n_experts, int64_t d_model, int64_t d_ff, double init_std) {
  w_gate = register_parameter("w_gate", torch::randn({n_experts, d_model, d_ff}) * init_std);
  w_up = register_parameter("w_up", torch::randn({n_experts, d_model, d_ff}) * init_std);
  w_down = register_parameter("w_down", torch::randn({n_experts, d_ff, d_model}) * init_std);
}

torch::Tensor SwigluExpertsImpl::forward(const torch::Tensor& x_ND, const torch::Tensor& tokens_per_expert_E) {
  TORCH_CHECK(x_ND.dim() == 2 && x_ND.size(1) == w_gate.size(1), "experts: x must be (N, D)");
  TORCH_CHECK(tokens_per_expert_E.numel() == w_gate.size(0), "experts: tokens_per_expert must have E entries");
  if (x_ND.is_cuda() && grouped_gemm_) return forward_grouped(x_ND, tokens_per_expert_E);
  return forward_loop(x_ND, tokens_per_expert_E);
}

torch::Tensor SwigluExpertsImpl::forward_loop(const torch::Tensor& x_ND, const torch::Tensor& tokens_per_expert_E) {
  const torch::Tensor counts_E = tokens_per_expert_E.to(torch::kCPU, torch::kInt64).contiguous();
  const int64_t* counts = counts_E.data_ptr<int64_t>();
  const int64_t n_experts = counts_E.numel();
  std::vector<torch::Tensor> outputs;
  int64_t start = 0;
  for (int64_t e = 0; e < n_experts; ++e) {
    if (counts[e] == 0) continue;
    const torch::Tensor x_e = x_ND.narrow(0, start, counts[e]);
    outputs.push_back(swiglu(x_e, w_gate[e].to(x_ND.scalar_type()), w_up[e].to(x_ND.scalar_type()),
                             w_down[e].to(x_ND.scalar_type())));
    start += counts[e];
  }
  TORCH_CHECK(start == x_ND.size(0), "experts: tokens_per_expert sums to ", start, " but x has ", x_ND.size(0),
              " rows");
  if (outputs.empty()) return torch::zeros({0, w_down.size(2)}, x_ND.options());
  return outputs.size() == 1 ? outputs.front() : torch::cat(outputs, 0);
}

torch::Tensor SwigluExpertsImpl::forward_grouped(const torch::Tensor& x_ND, const torch::Tensor& tokens_per_expert_E) {
  constexpr int64_t kAlign = 8;  // rows per group are padded to a multiple of this
  const int64_t n_rows = x_ND.size(0);
  const int64_t n_experts = w_gate.size(0);
  const auto long_opts = torch::TensorOptions().dtype(torch::kInt64).device(x_ND.device());
  const torch::Tensor counts_E = tokens_per_expert_E.to(long_opts);
  const torch::Tensor padded_E = torch::div(counts_E + (kAlign - 1), kAlign, "floor") * kAlign;
  const torch::Tensor pad_end_E = padded_E.cumsum(0);
  const torch::Tensor pad_start_E = pad_end_E - padded_E;
  const torch::Tensor start_E = counts_E.cumsum(0) - counts_E;
  // Row n of x_ND belongs to expert_N[n]; it goes to row dest_N[n] of the padded buffer.
  const torch::Tensor expert_N =
      torch::repeat_interleave(torch::arange(n_experts, long_opts), counts_E, /*dim=*/0, /*output_size=*/n_rows);
  const torch::Tensor dest_N =
      pad_start_E.index_select(0, expert_N) + torch::arange(n_rows, long_opts) - start_E.index_select(0, expert_N);
  // Σ padded ≤ N + (align−1)·E: a size known on the host without reading the counts back. The last
  // group is stretched over the slack so that every buffer row belongs to a group (zeros in, zeros out).
  const int64_t buffer_rows = (n_rows + (kAlign - 1) * n_experts + kAlign - 1) / kAlign * kAlign;
  const torch::Tensor x_RD = torch::zeros({buffer_rows, x_ND.size(1)}, x_ND.options().dtype(torch::kBFloat16))
                                 .index_copy(0, dest_N, x_ND.to(torch::kBFloat16));
  const torch::Tensor offsets_E =
      torch::cat({pad_end_E.narrow(0, 0, n_experts - 1), torch::full({1}, buffer_rows, long_opts)}).to(torch::kInt32);
  const torch::Tensor gate_RF = at::_grouped_mm(x_RD, w_gate.to(torch::kBFloat16), offsets_E);
  const torch::Tensor up_RF = at::_grouped_mm(x_RD, w_up.to(torch::kBFloat16), offsets_E);
  const torch::Tensor y_RD = at::_grouped_mm(torch::silu(gate_RF) * up_RF, w_down.to(torch::kBFloat16), offsets_E);
  return y_RD.index_select(0, dest_N).to(x_ND.scalar_type());
}

}  // namespace dirmoe
