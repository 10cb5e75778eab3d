#pragma once
// Data parallelism on LibTorch's c10d: ProcessGroupGloo on CPU, ProcessGroupNCCL on CUDA, wired
// from torchrun's environment (RANK, WORLD_SIZE, LOCAL_RANK, MASTER_ADDR, MASTER_PORT → TCPStore).
// Parameters are broadcast from rank 0 at start; gradients are averaged with bucketed all-reduces
// (flattened buckets of ~bucket_bytes, all launched before the first wait). Subgroups (new_group)
// are further c10d process groups over a prefix of the same store; expert parallelism
// (expert_parallel.h) builds its groups with them. Every operation is one of c10d's own.
#include <chrono>
#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include <c10/util/intrusive_ptr.h>
#include <torch/nn/module.h>
#include <torch/types.h>

#include "dirmoe/core/error.h"
#include "dirmoe/router/batch_mean.h"

namespace c10d {
class Work;
}  // namespace c10d

namespace dirmoe {

/// A collective (or a store exchange) did not complete within train.collective_timeout_s: a peer hangs
/// or died without its process ending. The message names the collective, the step, the ranks that had
/// reached it and where the others were last seen. dirmoe-train exits with code 4 on it.
class CollectiveTimeout : public Error {
 public:
  using Error::Error;
};

/// The default of train.collective_timeout_s (seconds).
inline constexpr double kDefaultCollectiveTimeoutS = 600.0;

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
  double timeout_s = kDefaultCollectiveTimeoutS;  // every collective and store wait (train.collective_timeout_s)
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
  /// `timeout_s` bounds every collective and store exchange (train.collective_timeout_s).
  static std::unique_ptr<DistributedContext> from_environment(const torch::Device& device,
                                                              double timeout_s = kDefaultCollectiveTimeoutS);

  /// Joins the group `spec` describes with NCCL (CUDA device) or Gloo (CPU). Unlike
  /// from_environment, a world of one process also gets a real group, whose collectives run
  /// through the backend (how the tests exercise NCCL and Gloo on a single device).
  static std::unique_ptr<DistributedContext> connect(const ProcessGroupSpec& spec, const torch::Device& device);

  /// Is there a process group (every collective below is the identity without one)?
  bool has_group() const;

  /// Rank `rank` of `world` processes that are threads of this process, meeting in an in-memory
  /// store named `name` (Gloo over loopback; tests and benchmarks of the collectives). Every thread
  /// calls it with the same name and world. Run such a process with TORCH_FR_BUFFER_SIZE=0 set before
  /// its first collective: the threads share c10d's one flight recorder, which in LibTorch 2.11 records
  /// each group's first collective into a map outside its lock (tests/catch_main.cpp sets it).
  static std::unique_ptr<DistributedContext> in_process(const std::string& name, int64_t rank, int64_t world);

  /// A process group over `ranks` (world ranks, ascending) on the same backend; this process must be one
  /// of them, and every one of them calls new_group with the same `name` and ranks (no other
  /// process takes part). The group's rank() is the position in `ranks`; a group of one process has
  /// no backend (its collectives are the identity).
  std::unique_ptr<DistributedContext> new_group(const std::string& name, const std::vector<int64_t>& ranks);

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
  /// Copies the tensors of rank 0 to all ranks, in place.
  void broadcast_tensors(const std::vector<torch::Tensor>& tensors);
  /// Copies the module's buffers of rank 0 to all ranks (controller state such as ReMoE's λ).
  void broadcast_buffers(torch::nn::Module& module);
  /// Replaces each gradient by its mean over ranks. Gradients are packed into flat buckets of at
  /// most `bucket_bytes` per dtype/device; all buckets are launched, then waited for.
  void average_gradients(const std::vector<torch::Tensor>& parameters, int64_t bucket_bytes = 25 << 20);
  /// Replaces each gradient by `scale` times its sum over ranks (bucketed as average_gradients).
  /// Without a group it only scales.
  void reduce_gradients(const std::vector<torch::Tensor>& parameters, double scale, int64_t bucket_bytes = 25 << 20);
  /// In-place sum over ranks.
  void sum_(torch::Tensor& values);
  /// All-to-all of rows (c10d alltoall_base): rows [Σ_{q<p} input_splits[q], +input_splits[p]) of
  /// `input` go to rank p; the result holds output_splits[p] rows from each rank p, rank 0's first.
  torch::Tensor all_to_all(const torch::Tensor& input, const std::vector<int64_t>& output_splits,
                           const std::vector<int64_t>& input_splits);
  /// Every rank's `input` (same shape on all), concatenated along dim 0 in rank order, on every rank.
  torch::Tensor all_gather_cat(const torch::Tensor& input);
  /// In-place mean over ranks of a float tensor (for logged metrics).
  void average_(torch::Tensor& values);
  /// In-place max over ranks.
  void max_(torch::Tensor& values);
  /// Every rank passes its string; rank 0 receives all (index = rank), others get an empty vector.
  /// Goes through the store; `tag` must be unique per call.
  std::vector<std::string> gather_to_main(const std::string& mine, const std::string& tag);
  void barrier();

  /// Where this process is (step and phase, e.g. "train step"), named in a CollectiveTimeout's
  /// message; with a group it is also left in the store (one small write) for the other ranks to read
  /// when they time out. The trainer calls it at the start of every step and of each phase after it.
  void report_progress(int64_t step, const std::string& phase);
  double timeout_s() const { return timeout_s_; }

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
  /// Waits for `work` (c10d) within the timeout; throws CollectiveTimeout describing the hang.
  void wait_collective(const c10::intrusive_ptr<c10d::Work>& work, const char* what);
  /// The CollectiveTimeout message: this rank's place, the ranks that reached collective #seq, where
  /// the others were last seen, the backend's words.
  std::string describe_hang(const std::string& what, const std::string& backend_text);
  std::string group_name_ = "world";
  std::vector<int64_t> world_ranks_;  // the world rank of each rank of this group (empty: the world)
  double timeout_s_ = kDefaultCollectiveTimeoutS;
  int64_t progress_step_ = -1;
  std::string progress_phase_ = "start-up";
  int64_t collective_seq_ = 0;  // collectives entered so far (every rank enters them in the same order)
  int64_t rank_ = 0;
  int64_t world_size_ = 1;
  int64_t local_rank_ = 0;
};

/// The processes of `dist` as the routers' BatchMeanReducer (an all-reduce mean); `dist` must outlive it.
std::shared_ptr<BatchMeanReducer> make_batch_mean_reducer(DistributedContext& dist);

}  // namespace dirmoe
