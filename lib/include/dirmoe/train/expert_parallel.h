#pragma once
// Expert parallelism on c10d (docs/parallel.md): with W processes and N = model.expert_parallel,
//   expert-parallel group g (g = 0..W/N−1): ranks g·N .. g·N+N−1. Together they hold every expert of
//     every layer once, rank g·N + r the experts [r·E/N, (r+1)·E/N); tokens reach their experts by
//     all-to-all inside the group (expert_parallel_dispatch.h);
//   expert-data-parallel group r (r = 0..N−1): ranks r, r+N, r+2N, ...: the W/N copies of one shard.
// Gradients. Each process's loss is the mean over its own tokens, and the global loss is the mean of
// the W processes' losses. A non-expert parameter's gradient is therefore averaged over all W
// processes (as in data parallel). An expert shard's gradient on one process already sums the
// contributions of the N processes of its expert-parallel group (their tokens came to it), so it is
// summed over its expert-data-parallel group and divided by W — not by W/N.
// Clipping uses the norm of the whole gradient: non-expert parts (equal everywhere) plus the sum over
// the expert-parallel group of each shard's squared norm.
// Checkpoints hold the full model: the shards and their AdamW moments are gathered in expert-parallel
// group 0 and rank 0 writes them as one process would; loading reads full tensors on every process
// and keeps each one's shard, so a checkpoint resumes with any N.
#include <cstdint>
#include <functional>
#include <memory>
#include <unordered_set>
#include <vector>

#include <torch/nn/module.h>
#include <torch/optim/optimizer.h>
#include <torch/types.h>

#include "dirmoe/model/expert_exchange.h"
#include "dirmoe/train/distributed.h"
#include "dirmoe/train/trainable_model.h"

namespace dirmoe {

class ExpertParallel {
 public:
  /// Builds both groups of this process; every process calls it with the same n. Throws ConfigError
  /// naming model.expert_parallel when n does not divide the number of processes or n_experts.
  ExpertParallel(DistributedContext& world, int64_t n, int64_t n_experts);
  ~ExpertParallel();
  ExpertParallel(const ExpertParallel&) = delete;
  ExpertParallel& operator=(const ExpertParallel&) = delete;

  int64_t size() const { return n_; }
  /// The expert-parallel group as the MoE layers see it.
  std::shared_ptr<ExpertExchange> exchange() const { return exchange_; }
  DistributedContext& expert_group() { return *expert_group_; }
  DistributedContext& expert_data_group() { return *expert_data_group_; }

  /// Shards the model's experts over the expert-parallel group (TrainableModel::shard_experts) and
  /// remembers which parameters are shards. Throws when the model has no experts to shard.
  /// `through`: what the layers exchange rows with, exchange() by default (a benchmark passes a
  /// wrapper of it that times the all-to-alls).
  void shard(TrainableModel& model, std::shared_ptr<ExpertExchange> through = nullptr);
  bool is_expert(const torch::Tensor& parameter) const;
  const std::vector<torch::Tensor>& expert_parameters() const { return expert_params_; }

  /// Makes every replica equal: rank 0's non-expert parameters and buffers to all processes, each
  /// shard from the first process of its expert-data-parallel group.
  void broadcast(torch::nn::Module& module);
  /// The gradient reduction of the header comment, for the trainable `parameters`.
  void reduce_gradients(const std::vector<torch::Tensor>& parameters);
  /// Scales the gradients so that the global L2 norm (each shard counted once) is at most `max_norm`
  /// (0: no clipping); returns the norm before clipping, float32 on the gradients' device.
  torch::Tensor clip_grad_norm(const std::vector<torch::Tensor>& parameters, double max_norm);

  /// Every process calls it; on rank 0, `on_main` runs while the expert parameters and their AdamW
  /// moments (`optimizer`, may be null) hold the full (E, ...) tensors gathered from expert-parallel
  /// group 0, so that what it saves is the model of one process. The shards are back afterwards.
  void with_full_model(torch::optim::Optimizer* optimizer, const std::function<void()>& on_main);
  /// Runs `load` while the expert parameters have their full (E, ...) shape, then keeps this process's
  /// shard of what was loaded, AdamW moments included (`optimizer` may be null).
  void load_full_model(torch::optim::Optimizer* optimizer, const std::function<void()>& load);

 private:
  DistributedContext& world_;
  int64_t n_;
  int64_t n_experts_;
  std::unique_ptr<DistributedContext> expert_group_;
  std::unique_ptr<DistributedContext> expert_data_group_;
  std::shared_ptr<ExpertExchange> exchange_;
  std::vector<torch::Tensor> expert_params_;
  std::unordered_set<const void*> expert_impls_;
};

}  // namespace dirmoe
