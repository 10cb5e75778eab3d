#pragma once
// Learning-rate schedule: linear warm-up then cosine decay to a floor (DESIGN.md "Model":
// lr 5e-4 cosine→5e-5, 1% warm-up).
#include <cstdint>

#include "dirmoe/config/config.h"

namespace dirmoe {

/// Number of warm-up steps: ceil(warmup_frac · max_steps), at least 0.
int64_t warmup_steps(const TrainConfig& train);

/// Learning rate used by optimiser step `step` (0-based):
///   step < W:  lr · (step+1)/W                                        (linear warm-up)
///   else:      lr_min + ½(lr − lr_min)(1 + cos(π·min(1, (step−W)/(max_steps−W))))
/// so the first step after warm-up uses the peak lr and the last step approaches lr_min.
double learning_rate_at(int64_t step, const TrainConfig& train);

}  // namespace dirmoe
