#include "dirmoe/train/lr_schedule.h"

#include <algorithm>
#include <cmath>

namespace dirmoe {

int64_t warmup_steps(const TrainConfig& train) {
  const double w = std::ceil(train.warmup_frac * static_cast<double>(train.max_steps));
  return std::max<int64_t>(0, static_cast<int64_t>(w));
}

double learning_rate_at(int64_t step, const TrainConfig& train) {
  const int64_t warmup = warmup_steps(train);
  if (step < warmup) {
    return train.lr * static_cast<double>(step + 1) / static_cast<double>(warmup);
  }
  const int64_t decay_steps = std::max<int64_t>(1, train.max_steps - warmup);
  const double progress = std::min(1.0, static_cast<double>(step - warmup) / static_cast<double>(decay_steps));
  return train.lr_min + 0.5 * (train.lr - train.lr_min) * (1.0 + std::cos(M_PI * progress));
}

}  // namespace dirmoe
