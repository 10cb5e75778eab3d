#include "dirmoe/model/swiglu_experts.h"

#include <vector>

#include <ATen/autocast_mode.h>
#include <torch/torch.h>

#include "dirmoe/core/intra_op_parallel.h"
#include "dirmoe/model/expert_partition.h"

namespace dirmoe {
namespace {

/// SwiGLU experts over consecutive row segments (segment e: counts[e] rows for expert e) as one
/// autograd node. With a_NF = silu(h_NF) ⊙ u_NF, h = x·W_gate[e], u = x·W_up[e], y = a·W_down[e]
/// per segment, the backward is, per segment,
///   da = g·W_down[e]ᵀ,   dW_down[e] = aᵀ·g,
///   du = da ⊙ silu(h),   dh = da ⊙ u ⊙ silu'(h),
///   dW_gate[e] = xᵀ·dh,  dW_up[e] = xᵀ·du,   dx = dh·W_gate[e]ᵀ + du·W_up[e]ᵀ.
/// Every product goes straight into a block of one buffer (or of the expert's slice of the weight
/// gradient) with mm_out: no per-expert outputs to concatenate, no gradients to stack. On the CPU
/// the blocks are shared among the threads (expert_partition.h), each GEMM on one thread.
class SwigluSegments : public torch::autograd::Function<SwigluSegments> {
 public:
  static torch::Tensor forward(torch::autograd::AutogradContext* ctx, const torch::Tensor& x_ND,
                               const torch::Tensor& w_gate_EDF, const torch::Tensor& w_up_EDF,
                               const torch::Tensor& w_down_EFD, const std::vector<int64_t>& counts) {
    const torch::Tensor x = x_ND.contiguous();
    const int64_t n_rows = x.size(0), d_ff = w_gate_EDF.size(2), d_model = w_down_EFD.size(2);
    const torch::Tensor h_NF = torch::empty({n_rows, d_ff}, x.options());
    const torch::Tensor u_NF = torch::empty({n_rows, d_ff}, x.options());
    const torch::Tensor y_ND = torch::empty({n_rows, d_model}, x.options());
    const auto rows = split_expert_rows(counts, parts_for(x));
    run_parts(rows, [&](const ExpertBlock& b) {
      const torch::Tensor x_b = x.narrow(0, b.first, b.count);
      mm_into(h_NF.narrow(0, b.first, b.count), x_b, w_gate_EDF[b.expert]);
      mm_into(u_NF.narrow(0, b.first, b.count), x_b, w_up_EDF[b.expert]);
    });
    const torch::Tensor s_NF = torch::silu(h_NF);
    const torch::Tensor a_NF = s_NF * u_NF;
    run_parts(rows, [&](const ExpertBlock& b) {
      mm_into(y_ND.narrow(0, b.first, b.count), a_NF.narrow(0, b.first, b.count), w_down_EFD[b.expert]);
    });
    ctx->save_for_backward({x, w_gate_EDF, w_up_EDF, w_down_EFD, h_NF, s_NF, u_NF, a_NF});
    ctx->saved_data["counts"] = counts;
    return y_ND;
  }

  static torch::autograd::variable_list backward(torch::autograd::AutogradContext* ctx,
                                                 torch::autograd::variable_list grad_outputs) {
    const std::vector<int64_t> counts = ctx->saved_data["counts"].toIntVector();
    const auto saved = ctx->get_saved_variables();
    const torch::Tensor &x = saved[0], &w_gate = saved[1], &w_up = saved[2], &w_down = saved[3];
    const torch::Tensor &h_NF = saved[4], &s_NF = saved[5], &u_NF = saved[6], &a_NF = saved[7];
    const torch::Tensor g_ND = grad_outputs[0].contiguous();
    const int64_t parts = parts_for(x);
    const auto rows = split_expert_rows(counts, parts);
    std::vector<int64_t> start(counts.size(), 0);  // first row of each expert
    for (size_t e = 1; e < counts.size(); ++e) start[e] = start[e - 1] + counts[e - 1];
    // expert e's rows of a buffer sorted by expert (the weight gradients reduce over them)
    auto rows_of = [&](const torch::Tensor& t, int64_t e) { return t.narrow(0, start[e], counts[e]); };

    torch::Tensor da_NF = torch::empty_like(h_NF);
    run_parts(rows, [&](const ExpertBlock& b) {
      mm_into(da_NF.narrow(0, b.first, b.count), g_ND.narrow(0, b.first, b.count), w_down[b.expert].t());
    });
    torch::Tensor grad_down;  // dW_down[e] = a_eᵀ·g_e, by columns of D
    if (ctx->needs_input_grad(3)) {
      grad_down = zero_unused(torch::empty_like(w_down), counts);
      run_parts(split_expert_columns(counts, w_down.size(2), parts), [&](const ExpertBlock& b) {
        mm_into(grad_down[b.expert].narrow(1, b.first, b.count), rows_of(a_NF, b.expert).t(),
                rows_of(g_ND, b.expert).narrow(1, b.first, b.count));
      });
    }
    const torch::Tensor du_NF = da_NF * s_NF;
    const torch::Tensor dh_NF = at::silu_backward(da_NF.mul_(u_NF), h_NF);

    torch::Tensor grad_x, grad_gate, grad_up;
    if (ctx->needs_input_grad(1)) grad_gate = zero_unused(torch::empty_like(w_gate), counts);
    if (ctx->needs_input_grad(2)) grad_up = zero_unused(torch::empty_like(w_up), counts);
    if (grad_gate.defined() || grad_up.defined()) {  // dW[e] = x_eᵀ·d_e, by columns of F
      run_parts(split_expert_columns(counts, w_gate.size(2), parts), [&](const ExpertBlock& b) {
        const torch::Tensor x_e_t = rows_of(x, b.expert).t();
        if (grad_gate.defined()) {
          mm_into(grad_gate[b.expert].narrow(1, b.first, b.count), x_e_t,
                  rows_of(dh_NF, b.expert).narrow(1, b.first, b.count));
        }
        if (grad_up.defined()) {
          mm_into(grad_up[b.expert].narrow(1, b.first, b.count), x_e_t,
                  rows_of(du_NF, b.expert).narrow(1, b.first, b.count));
        }
      });
    }
    if (ctx->needs_input_grad(0)) {
      grad_x = torch::empty_like(x);
      run_parts(rows, [&](const ExpertBlock& b) {
        mm_into(grad_x.narrow(0, b.first, b.count), dh_NF.narrow(0, b.first, b.count), w_gate[b.expert].t())
            .addmm_(du_NF.narrow(0, b.first, b.count), w_up[b.expert].t());
      });
    }
    return {grad_x, grad_gate, grad_up, grad_down, torch::Tensor()};
  }

 private:
  /// One part per intra-op thread on the CPU; elsewhere one (the device parallelises each GEMM).
  static int64_t parts_for(const torch::Tensor& x) { return x.is_cpu() ? at::get_num_threads() : 1; }

  /// fn(block) for every block, the parts in parallel (one thread each); inside a parallel region
  /// ATen and the BLAS run each GEMM on the calling thread (with nested OpenMP off, its default).
  /// NOTE: OpenMP's threads do not inherit the caller's thread-local state (grad mode, which is off
  /// inside this autograd node, the profiler's callbacks): each part runs under the caller's.
  template <typename Fn>
  static void run_parts(const std::vector<std::vector<ExpertBlock>>& parts, Fn&& fn) {
    if (parts.size() == 1) {
      for (const ExpertBlock& b : parts[0]) fn(b);
      return;
    }
    parallel_for_with_caller_state(0, static_cast<int64_t>(parts.size()), 1, [&](int64_t begin, int64_t end) {
      for (int64_t p = begin; p < end; ++p) {
        for (const ExpertBlock& b : parts[static_cast<size_t>(p)]) fn(b);
      }
    });
  }

  /// out = a·b into the existing `out` (a view into a larger buffer); returns it.
  static torch::Tensor mm_into(torch::Tensor out, const torch::Tensor& a, const torch::Tensor& b) {
    at::mm_out(out, a, b);
    return out;
  }

  /// The gradient slices of experts without rows are 0 (the others are written whole).
  static torch::Tensor zero_unused(torch::Tensor grad_E, const std::vector<int64_t>& counts) {
    for (size_t e = 0; e < counts.size(); ++e) {
      if (counts[e] == 0) grad_E[static_cast<int64_t>(e)].zero_();
    }
    return grad_E;
  }
};

std::vector<int64_t> host_counts(const torch::Tensor& tokens_per_expert_E, int64_t n_rows) {
  const torch::Tensor counts_E = tokens_per_expert_E.to(torch::kCPU, torch::kInt64).contiguous();
  std::vector<int64_t> counts(counts_E.data_ptr<int64_t>(), counts_E.data_ptr<int64_t>() + counts_E.numel());
  int64_t total = 0;
  for (int64_t n : counts) total += n;
  TORCH_CHECK(total == n_rows, "experts: tokens_per_expert sums to ", total, " but x has ", n_rows, " rows");
  return counts;
}

}  // namespace

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
  // NOTE: the grouped GEMM computes in bf16, so it serves bf16 training (autocast, or bf16
  // inputs); an fp32 run on CUDA (train.precision = "fp32") keeps its experts in fp32.
  const bool bf16_compute =
      x_ND.scalar_type() == torch::kBFloat16 || at::autocast::is_autocast_enabled(at::kCUDA);
  if (x_ND.is_cuda() && grouped_gemm_ && bf16_compute) return forward_grouped(x_ND, tokens_per_expert_E);
  if (x_ND.is_cpu() && fused_) return forward_fused(x_ND, tokens_per_expert_E);
  return forward_loop(x_ND, tokens_per_expert_E);
}

torch::Tensor SwigluExpertsImpl::forward_fused(const torch::Tensor& x_ND, const torch::Tensor& tokens_per_expert_E) {
  const std::vector<int64_t> counts = host_counts(tokens_per_expert_E, x_ND.size(0));
  const auto dtype = x_ND.scalar_type();
  return SwigluSegments::apply(x_ND, w_gate.to(dtype), w_up.to(dtype), w_down.to(dtype), counts);
}

torch::Tensor SwigluExpertsImpl::forward_loop(const torch::Tensor& x_ND, const torch::Tensor& tokens_per_expert_E) {
  const std::vector<int64_t> counts = host_counts(tokens_per_expert_E, x_ND.size(0));
  if (x_ND.size(0) == 0) return torch::zeros({0, w_down.size(2)}, x_ND.options());
  // NOTE: split/unbind rather than narrow/select: their backward is one cat/stack, where narrow and
  // select would each materialise a zero gradient of the whole input.
  const std::vector<torch::Tensor> x_parts = x_ND.split_with_sizes(counts, 0);
  const auto dtype = x_ND.scalar_type();
  const std::vector<torch::Tensor> gate_E = w_gate.to(dtype).unbind(0);
  const std::vector<torch::Tensor> up_E = w_up.to(dtype).unbind(0);
  const std::vector<torch::Tensor> down_E = w_down.to(dtype).unbind(0);
  std::vector<torch::Tensor> outputs;
  for (size_t e = 0; e < counts.size(); ++e) {
    if (counts[e] > 0) outputs.push_back(swiglu(x_parts[e], gate_E[e], up_E[e], down_E[e]));
  }
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
