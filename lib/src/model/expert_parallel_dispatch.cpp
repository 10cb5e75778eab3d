#include "dirmoe/model/expert_parallel_dispatch.h"

#include <numeric>

#include <torch/torch.h>

namespace dirmoe {
namespace {

using torch::autograd::AutogradContext;
using torch::autograd::variable_list;

class AllToAllRows : public torch::autograd::Function<AllToAllRows> {
 public:
  static torch::Tensor forward(AutogradContext* ctx, const torch::Tensor& x, ExpertExchange* exchange,
                               const std::vector<int64_t>& output_splits, const std::vector<int64_t>& input_splits) {
    // NOTE: the exchange is kept as an address: it is owned by the trainer's expert-parallel groups,
    // which outlive every graph built while they exist.
    ctx->saved_data["exchange"] = static_cast<int64_t>(reinterpret_cast<intptr_t>(exchange));
    ctx->saved_data["output_splits"] = output_splits;
    ctx->saved_data["input_splits"] = input_splits;
    return exchange->all_to_all(x.contiguous(), output_splits, input_splits);
  }

  static variable_list backward(AutogradContext* ctx, variable_list grad_outputs) {
    auto* exchange = reinterpret_cast<ExpertExchange*>(static_cast<intptr_t>(ctx->saved_data["exchange"].toInt()));
    const std::vector<int64_t> output_splits = ctx->saved_data["output_splits"].toIntVector();
    const std::vector<int64_t> input_splits = ctx->saved_data["input_splits"].toIntVector();
    // The rows go back where they came from: the forward's output splits are the backward's input.
    return {exchange->all_to_all(grad_outputs[0].contiguous(), input_splits, output_splits), torch::Tensor(),
            torch::Tensor(), torch::Tensor()};
  }
};

std::vector<int64_t> host_int64(const torch::Tensor& t) {
  const torch::Tensor h = t.to(torch::kCPU, torch::kInt64).contiguous();
  return std::vector<int64_t>(h.data_ptr<int64_t>(), h.data_ptr<int64_t>() + h.numel());
}

}  // namespace

torch::Tensor all_to_all_rows(ExpertExchange& exchange, const torch::Tensor& x, const std::vector<int64_t>& output_splits,
                              const std::vector<int64_t>& input_splits) {
  return AllToAllRows::apply(x, &exchange, output_splits, input_splits);
}

ExpertParallelDispatch::ExpertParallelDispatch(std::shared_ptr<ExpertExchange> exchange, int64_t n_experts)
    : exchange_(std::move(exchange)), n_experts_(n_experts) {
  TORCH_CHECK(exchange_ != nullptr, "expert parallelism needs an exchange");
  const int64_t n = exchange_->size();
  TORCH_CHECK(n >= 1 && n_experts_ % n == 0, "expert parallelism over ", n, " processes needs n_experts (",
              n_experts_, ") divisible by it");
  local_experts_ = n_experts_ / n;
}

std::vector<torch::Tensor> ExpertParallelDispatch::shard(torch::nn::Module& experts) const {
  torch::NoGradGuard no_grad;
  std::vector<torch::Tensor> params = experts.parameters();
  for (auto& p : params) {
    TORCH_CHECK(p.dim() >= 1 && p.size(0) == n_experts_, "expert parallelism: an expert parameter of shape ",
                p.sizes(), " is not stacked by expert (E = ", n_experts_, ")");
    p.set_data(p.detach().narrow(0, first_expert(), local_experts_).clone());
  }
  return params;
}

torch::Tensor ExpertParallelDispatch::forward(const torch::Tensor& x_ND, const torch::Tensor& tokens_per_expert_E,
                                              const LocalExperts& local_experts) {
  const int64_t N = exchange_->size();
  const int64_t L = local_experts_;
  TORCH_CHECK(tokens_per_expert_E.numel() == n_experts_, "expert parallelism: tokens_per_expert has ",
              tokens_per_expert_E.numel(), " entries, the layer ", n_experts_, " experts");

  // 1. counts: this process's count for each expert of peer p goes to p; recv_NL[p][j] rows will come
  // from process p for local expert j.
  const torch::Tensor counts_E = tokens_per_expert_E.to(torch::kInt64).contiguous();
  const std::vector<int64_t> per_peer(static_cast<size_t>(N), L);
  const std::vector<int64_t> sent = host_int64(counts_E);
  const std::vector<int64_t> recv = host_int64(exchange_->all_to_all(counts_E, per_peer, per_peer));
  std::vector<int64_t> input_splits(static_cast<size_t>(N), 0), output_splits(static_cast<size_t>(N), 0);
  std::vector<int64_t> tokens_per_local(static_cast<size_t>(L), 0);
  for (int64_t p = 0; p < N; ++p) {
    for (int64_t j = 0; j < L; ++j) {
      input_splits[static_cast<size_t>(p)] += sent[static_cast<size_t>(p * L + j)];
      output_splits[static_cast<size_t>(p)] += recv[static_cast<size_t>(p * L + j)];
      tokens_per_local[static_cast<size_t>(j)] += recv[static_cast<size_t>(p * L + j)];
    }
  }
  const int64_t sent_rows = std::accumulate(input_splits.begin(), input_splits.end(), int64_t{0});
  TORCH_CHECK(sent_rows == x_ND.size(0), "expert parallelism: tokens_per_expert sums to ", sent_rows, " but x has ",
              x_ND.size(0), " rows");

  // 2. dispatch
  const torch::Tensor x_RD = all_to_all_rows(*exchange_, x_ND, output_splits, input_splits);
  const int64_t R = x_RD.size(0);

  // 3. experts: received rows come grouped by (source, local expert); the experts want them by
  // (local expert, source). perm_R[i] is the received row that goes to position i.
  const bool regroup = N > 1 && L > 1;
  torch::Tensor perm_R, inverse_R;
  if (regroup) {
    std::vector<int64_t> block_start(static_cast<size_t>(N * L), 0);
    int64_t offset = 0;
    for (int64_t b = 0; b < N * L; ++b) {
      block_start[static_cast<size_t>(b)] = offset;
      offset += recv[static_cast<size_t>(b)];
    }
    std::vector<int64_t> perm;
    perm.reserve(static_cast<size_t>(R));
    for (int64_t j = 0; j < L; ++j) {
      for (int64_t p = 0; p < N; ++p) {
        const int64_t start = block_start[static_cast<size_t>(p * L + j)];
        for (int64_t i = 0; i < recv[static_cast<size_t>(p * L + j)]; ++i) perm.push_back(start + i);
      }
    }
    const auto long_opts = torch::TensorOptions().dtype(torch::kInt64);
    perm_R = torch::tensor(perm, long_opts).to(x_ND.device());
    inverse_R = torch::empty_like(perm_R).index_put_({perm_R}, torch::arange(R, perm_R.options()));
  }
  const torch::Tensor x_sorted_RD = regroup ? x_RD.index_select(0, perm_R) : x_RD;
  const torch::Tensor tokens_per_local_L =
      torch::tensor(tokens_per_local, torch::TensorOptions().dtype(torch::kInt64)).to(x_ND.device());
  const torch::Tensor y_sorted_RD = local_experts(x_sorted_RD, tokens_per_local_L);
  const torch::Tensor y_RD = regroup ? y_sorted_RD.index_select(0, inverse_R) : y_sorted_RD;

  // 4. return: the reverse all-to-all puts every output at its row of x_ND
  return all_to_all_rows(*exchange_, y_RD, input_splits, output_splits);
}

}  // namespace dirmoe
