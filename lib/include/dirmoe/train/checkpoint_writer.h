#pragma once
// Writes dirmoe-train's checkpoints into RUN/checkpoints/ (the file layout: checkpoint.h): the metadata
// (format version, step, tokens, resolved config, git revision, world size, the run's counters, and every
// rank's sampler and RNG states), then the model and optimiser, gathered on rank 0 from the expert-parallel
// shards. A step checkpoint is followed by the rotation to train.keep_last files and, when the validation
// loss improved, by best.ckpt as a hard link to it (a copy where links fail), renamed into place.
#include <cstdint>
#include <filesystem>

#include <torch/nn/module.h>
#include <torch/optim/optimizer.h>

#include "dirmoe/config/config.h"
#include "dirmoe/train/batch_source.h"
#include "dirmoe/train/distributed.h"
#include "dirmoe/train/expert_parallel.h"
#include "dirmoe/train/run_counters.h"

namespace dirmoe {

/// What a checkpoint holds, by reference (nothing is copied until write time).
struct CheckpointSources {
  const Config& config;
  torch::nn::Module& module;
  torch::optim::Optimizer* optimizer = nullptr;
  BatchSource& sampler;
  const RunCounters& counters;
};

class CheckpointWriter {
 public:
  /// `dir`: RUN/checkpoints (created by rank 0). `expert_parallel` may be null.
  CheckpointWriter(std::filesystem::path dir, int64_t keep_last, DistributedContext& dist,
                   ExpertParallel* expert_parallel);

  /// The step checkpoint of counters.step; every rank calls it (the ranks' sampler and RNG states are
  /// gathered). On rank 0 it then keeps the newest keep_last step checkpoints and, with `also_best`,
  /// makes best.ckpt the same file. Returns its path.
  std::filesystem::path write_step(const CheckpointSources& sources, bool also_best);

  /// best.ckpt alone (between step checkpoints), with rank 0's sampler and RNG state; every rank calls it
  /// (the expert-parallel gather is collective).
  void write_best(const CheckpointSources& sources);

  /// The newest step checkpoint written or resumed from (empty: none yet).
  const std::filesystem::path& last() const { return last_; }
  void set_last(std::filesystem::path path) { last_ = std::move(path); }
  const std::filesystem::path& dir() const { return dir_; }

 private:
  void write(const std::filesystem::path& path, const CheckpointSources& sources, bool all_ranks);

  std::filesystem::path dir_;
  int64_t keep_last_;
  DistributedContext& dist_;
  ExpertParallel* expert_parallel_;
  std::filesystem::path last_;
};

/// Makes `dir`/best.ckpt the same file as `checkpoint`: a hard link (a copy where the file system has
/// none) under best.ckpt.tmp, renamed over best.ckpt, so a crash leaves the previous best.ckpt whole.
void link_best_checkpoint(const std::filesystem::path& dir, const std::filesystem::path& checkpoint);

}  // namespace dirmoe
