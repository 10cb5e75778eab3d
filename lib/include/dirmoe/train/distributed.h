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

/// Where one process joins a process group: its rank among world_size processes and the TCPStore
/// that rank 0 (or torchrun's agent) hosts at master_addr:master_port.
struct ProcessGroupSpec {
  int64_t rank = 0;
  int64_t world_size = 1;
  int64_t local_rank = 0;        // CUDA device index of this process
  std::string master_addr = "127.0.0.1";
  int64_t master_port = 0;       // 1..65535; 0 (a free port) only for a one-process group
  bool agent_store = false;      // torchrun's agent hosts the store; every rank is a client
  std::string attempt = "0";     // torchrun's restart count: keys of a restarted attempt stay apart
};

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

  /// Joins the group `spec` describes with NCCL (CUDA device) or Gloo (CPU). Unlike
  /// from_environment, a world of one process also gets a real group, whose collectives run
  /// through the backend (how the tests exercise NCCL and Gloo on a single device).
  static std::unique_ptr<DistributedContext> connect(const ProcessGroupSpec& spec, const torch::Device& device);

  /// Is there a process group (every collective below is the identity without one)?
  bool has_group() const;

  int64_t rank() const { return rank_; }
  int64_t world_size() const { return world_size_; }
  int64_t local_rank() const { return local_rank_; }
  bool is_main() const { return rank_ == 0; }
  /// More than one process.
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
