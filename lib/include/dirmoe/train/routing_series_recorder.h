#pragma once
// The routing time series of dirmoe-train (train.stats_every > 0; routing_time_series.h has the file):
// the accumulator is the model's routing sink only during the forwards of every stats_every-th step
// (all its micro-batches, this rank's rows); after such a step the ranks' counts are added on rank 0,
// which appends one row. Other steps pay nothing.
#include <cstdint>
#include <filesystem>
#include <memory>

#include "dirmoe/config/config.h"
#include "dirmoe/stats/routing_stats_accumulator.h"
#include "dirmoe/stats/routing_time_series.h"
#include "dirmoe/train/distributed.h"
#include "dirmoe/train/trainable_model.h"

namespace dirmoe {

class RoutingSeriesRecorder {
 public:
  /// Records nothing when config.train.stats_every is 0. Rank 0 writes RUN/routing_train.h5, or, for a
  /// run resumed at `start_step` > 0 beside an existing file, RUN/routing_train_from_step_NNNNNNNN.h5.
  RoutingSeriesRecorder(const Config& config, const std::filesystem::path& out_dir, int64_t start_step,
                        DistributedContext& dist);
  ~RoutingSeriesRecorder();

  /// Before step `index` (0-based) runs: makes the accumulator `model`'s sink when this step is recorded.
  void before_step(int64_t index, TrainableModel& model);
  /// After it completed as step `step` (= index + 1): detaches the sink, gathers and appends the row.
  void after_step(int64_t step, TrainableModel& model);
  /// Writes the rows so far (before a checkpoint, so that a resumed run finds every row up to it).
  void flush();
  void close();

 private:
  int64_t every_;
  bool recording_ = false;  // the current step is recorded
  DistributedContext& dist_;
  std::unique_ptr<RoutingStatsAccumulator> accumulator_;
  std::unique_ptr<RoutingTimeSeriesWriter> writer_;  // rank 0 only
};

}  // namespace dirmoe
