#pragma once
// The training loop of dirmoe-train (DESIGN.md "Compute parity"): next batch → train step (train_step.h)
// → log (step_log.h) → validate (validation_loss.h) → checkpoint (checkpoint_writer.h) → stop?, with
// the non-finite guard (nonfinite_guard.h), the routing time series (routing_series_recorder.h), resume
// (run_resume.h) and the run summary (run_summary.h) as named parts. Data and expert parallelism go
// through DistributedContext and ExpertParallel.
//
// Outputs in the run directory (rank 0 only):
//   metrics.jsonl           one JSON object per log step (step_log.h)
//   checkpoints/step_*.ckpt the last train.keep_last checkpoints; checkpoints/best.ckpt
//   summary.json            final/best validation loss, tokens/s, clipped steps, the parity block, status
//
// Host synchronisations happen only at log, eval and checkpoint steps: non-finite loss terms are
// accumulated on the device every step and checked there (before any checkpoint is written, so
// the last checkpoint on disk is always a good one).
#include <atomic>
#include <cstdint>
#include <filesystem>
#include <memory>
#include <ostream>
#include <vector>

#include <nlohmann/json.hpp>
#include <torch/types.h>

#include "dirmoe/config/config.h"
#include "dirmoe/core/error.h"
#include "dirmoe/train/batch_source.h"
#include "dirmoe/train/distributed.h"
#include "dirmoe/train/nonfinite_guard.h"  // TrainingDiverged
#include "dirmoe/train/trainable_model.h"

namespace dirmoe {

struct TrainerIo {
  std::filesystem::path out_dir;
  bool resume = false;
  /// Set (by a signal handler) to stop after the current step with a checkpoint.
  const std::atomic<bool>* stop_requested = nullptr;
  /// Null: a single process.
  DistributedContext* dist = nullptr;
  std::ostream* log = nullptr;  // progress and messages; null: std::cerr
  bool log_is_tty = false;
};

struct TrainResult {
  int64_t steps_done = 0;
  /// "finished" | "stopped" (signal)
  std::string status;
  nlohmann::json summary;
};

/// The device train.device names ("auto": CUDA device LOCAL_RANK when available, else CPU).
torch::Device resolve_train_device(const TrainConfig& train, int64_t local_rank = 0);

/// True when train.precision selects bf16 autocast on `device` ("auto": bf16 on CUDA).
bool use_bf16_autocast(const TrainConfig& train, const torch::Device& device);

class Trainer {
 public:
  /// `model` is moved to the device, broadcast from rank 0, and given an optimiser. With
  /// io.resume the newest valid checkpoint in out_dir/checkpoints is loaded (none: a fresh start).
  /// `validation_batches`: fixed (rows, T+1) windows for the validation loss (may be empty); with W
  /// processes each scores its share of the rows (rows divisible by W), and the loss is over all of them.
  Trainer(Config config, std::shared_ptr<TrainableModel> model, std::unique_ptr<BatchSource> train_batches,
          std::vector<torch::Tensor> validation_batches, TrainerIo io);
  ~Trainer();

  /// Trains from the current step to train.max_steps (or until stop_requested). Throws
  /// TrainingDiverged when a loss term goes non-finite.
  TrainResult run();

  int64_t step() const;
  /// Mean validation LM loss over the validation batches (no gradient). With several processes every
  /// one must call it: each scores its share and the sums are all-reduced.
  double validation_loss();

 private:
  struct State;
  std::unique_ptr<State> s_;
};

}  // namespace dirmoe
