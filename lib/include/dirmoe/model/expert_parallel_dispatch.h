#pragma once
// The experts step of an MoE layer when its experts are sharded over N processes (expert
// parallelism, docs/parallel.md). Routing and the local dispatch plan stay on the token's own
// process; this class moves the planned rows to the processes holding their experts and back:
//   1. counts:   every process sends each peer the counts of the peer's E/N experts (all-to-all of
//                tokens_per_expert_E), so it learns how many rows it receives from whom for what;
//   2. dispatch: the rows x_ND, sorted by expert and so contiguous by owning process, go to their
//                owners (all-to-all with those split sizes);
//   3. experts:  the received rows, grouped by (source process, local expert), are regrouped by
//                (local expert, source process) and run through this process's experts;
//   4. return:   the outputs go back by the reverse all-to-all, in the order of x_ND.
// Both row all-to-alls are differentiable: the backward of one is the reverse all-to-all of the
// gradients, so the expert weights see the gradients of every token routed to them.
#include <cstdint>
#include <functional>
#include <memory>
#include <vector>

#include <torch/nn/module.h>
#include <torch/types.h>

#include "dirmoe/model/expert_exchange.h"

namespace dirmoe {

/// Differentiable all-to-all of rows (ExpertExchange::all_to_all); its backward sends the gradients
/// back with the split sizes swapped.
torch::Tensor all_to_all_rows(ExpertExchange& exchange, const torch::Tensor& x, const std::vector<int64_t>& output_splits,
                              const std::vector<int64_t>& input_splits);

/// Runs this process's experts on rows sorted by local expert: (x_RD, tokens_per_local_expert_L) → y_RD.
using LocalExperts = std::function<torch::Tensor(const torch::Tensor&, const torch::Tensor&)>;

class ExpertParallelDispatch {
 public:
  /// `n_experts` E of the layer; the exchange's size N must divide it.
  ExpertParallelDispatch(std::shared_ptr<ExpertExchange> exchange, int64_t n_experts);

  /// y_ND for the rows x_ND of this process, sorted by expert with tokens_per_expert_E (E) rows each
  /// (MoeLayer's dispatch plan). Every process of the group must call it for the same layer in turn.
  /// Reads the counts on the host (the split sizes of the all-to-alls).
  torch::Tensor forward(const torch::Tensor& x_ND, const torch::Tensor& tokens_per_expert_E,
                        const LocalExperts& local_experts);

  /// Keeps this process's experts: every parameter of `experts` (each (E, ...), expert first) is
  /// narrowed in place to rows [first_expert(), first_expert() + local_experts()). Returns them.
  std::vector<torch::Tensor> shard(torch::nn::Module& experts) const;

  int64_t first_expert() const { return exchange_->rank() * local_experts_; }
  int64_t local_experts() const { return local_experts_; }
  ExpertExchange& exchange() { return *exchange_; }

 private:
  std::shared_ptr<ExpertExchange> exchange_;
  int64_t n_experts_;
  int64_t local_experts_;
};

}  // namespace dirmoe
