#pragma once
// Data parallelism on LibTorch's c10d: ProcessGroupGloo on CPU, ProcessGroupNCCL on CUDA, wired
// from torchrun's environment (RANK, WORLD_SIZE, LOCAL_RANK, MASTER_ADDR, MASTER_PORT → TCPStore).
// Parameters are broadcast from rank 0 at start; gradients are averaged with bucketed all-reduces
// (flattened buckets of ~bucket_bytes, all launched before the first wait).
#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include <torch/nn/module.h>
#include <torch/types.h>

namespace dirmoe {

class DistributedContext {
 public:
  /// A single-process context (rank 0 of 1): every collective is the identity.
  DistributedContext();
  ~DistributedContext();
  DistributedContext(const DistributedContext&) = delete;
  DistributedContext& operator=(const DistributedContext&) = delete;

  /// Reads torchrun's variables. WORLD_SIZE unset or 1 gives a single-process context. Otherwise
  /// connects to the TCPStore at MASTER_ADDR:MASTER_PORT (torchrun's agent store when
  /// TORCHELASTIC_USE_AGENT_STORE=True, else rank 0 hosts it) and builds Gloo (CPU) or NCCL (CUDA).
  /// Throws dirmoe::Error naming the variable that is missing or malformed.
  static std::unique_ptr<DistributedContext> from_environment(const torch::Device& device);

  int64_t rank() const { return rank_; }
  int64_t world_size() const { return world_size_; }
  int64_t local_rank() const { return local_rank_; }
  bool is_main() const { return rank_ == 0; }
  bool active() const { return world_size_ > 1; }
  /// "gloo", "nccl" or "none".
  std::string backend_name() const;

  /// Copies every parameter and buffer of rank 0 to all ranks.
  void broadcast_module(torch::nn::Module& module);
  /// Copies the module's buffers of rank 0 to all ranks (controller state such as ReMoE's λ).
  void broadcast_buffers(torch::nn::Module& module);
  /// Replaces each gradient by its mean over ranks. Gradients are packed into flat buckets of at
  /// most `bucket_bytes` per dtype/device; all buckets are launched, then waited for.
  void average_gradients(const std::vector<torch::Tensor>& parameters, int64_t bucket_bytes = 25 << 20);
  /// In-place mean over ranks of a float tensor (for logged metrics).
  void average_(torch::Tensor& values);
  /// In-place max over ranks.
  void max_(torch::Tensor& values);
  /// Every rank passes its string; rank 0 receives all (index = rank), others get an empty vector.
  /// Goes through the store; `tag` must be unique per call.
  std::vector<std::string> gather_to_main(const std::string& mine, const std::string& tag);
  void barrier();

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
  int64_t rank_ = 0;
  int64_t world_size_ = 1;
  int64_t local_rank_ = 0;
};

}  // namespace dirmoe
