#pragma once
// The validation loss of dirmoe-train: the mean LM cross-entropy over fixed (rows, T+1) windows, with
// the router's evaluation rule and no gradient. With W processes each scores its share of every batch's
// rows (rows divisible by W) and the sums are all-reduced: the same windows and the same loss as one
// process, at 1/W of the work each. The training RNG streams are left where they were (exact resume).
#include <cstdint>
#include <vector>

#include <torch/types.h>

#include "dirmoe/train/distributed.h"
#include "dirmoe/train/trainable_model.h"

namespace dirmoe {

/// Mean validation LM loss over `batches` (NaN when there are none); every process must call it.
double validation_loss(TrainableModel& model, const std::vector<torch::Tensor>& batches, DistributedContext& dist,
                       const torch::Device& device, bool bf16, int64_t seq_len);

}  // namespace dirmoe
