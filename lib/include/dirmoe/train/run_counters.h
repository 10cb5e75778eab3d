#pragma once
// What a training run has counted so far, beyond the model and optimiser: steps, tokens, the best and
// last validation loss, time, FLOPs, clipped steps and the parity and load accumulators. Checkpoints
// carry it (the metadata's "trainer" block) so that a resumed run reports as one that never stopped.
#include <cstdint>
#include <limits>

#include <nlohmann/json.hpp>

#include "dirmoe/train/load_tracker.h"
#include "dirmoe/train/parity.h"

namespace dirmoe {

struct RunCounters {
  int64_t step = 0;    // completed optimiser steps
  int64_t tokens = 0;  // tokens trained on, all ranks
  double best_val = std::numeric_limits<double>::infinity();
  int64_t best_step = -1;
  double last_val = std::numeric_limits<double>::quiet_NaN();
  double train_seconds = 0;  // wall time inside training steps (excludes eval and checkpoints)
  double total_flops = 0;    // Σ over log windows of FLOPs/token × tokens
  bool flops_known = true;
  double clipped_steps = 0;  // steps whose gradient norm exceeded train.grad_clip (host copy, log steps)
  ParityTracker parity;
  LoadTracker load;  // tokens per expert after warm-up, for the load block of summary.json

  /// Records a validation loss at the current step; true when it is the best so far (best.ckpt is due).
  bool record_validation(double val_loss);

  /// The checkpoint metadata's "trainer" block (step and tokens are stored beside it).
  nlohmann::json trainer_state() const;
  /// Restores step, tokens (from the metadata) and trainer_state(); keys missing from older
  /// checkpoints keep their defaults.
  void restore(const nlohmann::json& meta);
};

/// JSON null for NaN and ±Inf (JSON has neither), else the number.
nlohmann::json finite_or_null(double value);

}  // namespace dirmoe
