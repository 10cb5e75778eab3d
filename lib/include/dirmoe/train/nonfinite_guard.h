#pragma once
// The non-finite guard of dirmoe-train: every step's loss terms (lm_loss, aux/<name>, grad_norm) are
// checked for NaN/Inf on the device, without a host synchronisation, and the first step at which each
// term went bad is kept there. At log steps check() reads that state once (all ranks agree through one
// all-reduce); a bad term ends the run with TrainingDiverged and a "diverged" summary.json, before any
// checkpoint of the bad state is written, so the last checkpoint on disk is always a good one.
#include <cstdint>
#include <filesystem>
#include <string>
#include <vector>

#include <torch/types.h>

#include "dirmoe/core/error.h"
#include "dirmoe/train/distributed.h"

namespace dirmoe {

/// A loss term became NaN or Inf. The message names the term and the step, and the last good
/// checkpoint. dirmoe-train exits with code 3 on it.
class TrainingDiverged : public Error {
 public:
  using Error::Error;
};

class NonFiniteGuard {
 public:
  /// `device`: where the terms live (the bookkeeping stays there).
  explicit NonFiniteGuard(torch::Device device) : device_(device) {}

  /// Records step `step`'s terms: names[i] is the name of values[i] (a scalar tensor on the device).
  /// A change in the set of names (a router that adds a term later) starts the bookkeeping afresh.
  void record(int64_t step, const std::vector<std::string>& names, const std::vector<torch::Tensor>& values);

  /// Host sync: throws TrainingDiverged when any term on any rank went non-finite, naming the first
  /// bad term and its step, every term bad at that step, `current_step` and `last_checkpoint` (empty:
  /// none written yet). Rank 0 first writes `diverged_summary` (summary.json) with status "diverged",
  /// bad_term, bad_terms, bad_step, steps and last_good_checkpoint.
  void check(DistributedContext& dist, int64_t current_step, const std::filesystem::path& last_checkpoint,
             const std::filesystem::path& diverged_summary) const;

 private:
  torch::Device device_;
  std::vector<std::string> names_;
  torch::Tensor nonfinite_N_;       // (N) bool: term i has been non-finite at some step
  torch::Tensor first_bad_step_N_;  // (N) int64: the first such step, -1 while finite
};

}  // namespace dirmoe
