#include "dirmoe/train/routing_series_recorder.h"

#include <string>
#include <vector>

#include <fmt/format.h>
#include <nlohmann/json.hpp>

#include "dirmoe/core/build_info.h"
#include "dirmoe/stats/routing_stats_merge.h"

namespace dirmoe {

RoutingSeriesRecorder::RoutingSeriesRecorder(const Config& config, const std::filesystem::path& out_dir,
                                             int64_t start_step, DistributedContext& dist)
    : every_(config.train.stats_every), dist_(dist) {
  if (every_ <= 0) return;
  RoutingStatsOptions so;
  so.n_layers = config.model.n_layers;
  so.n_experts = config.model.n_experts;
  accumulator_ = std::make_unique<RoutingStatsAccumulator>(so);
  if (!dist_.is_main()) return;
  // A resumed run starts a new file beside the first one instead of truncating it.
  auto path = out_dir / "routing_train.h5";
  if (start_step > 0 && std::filesystem::exists(path)) {
    path = out_dir / fmt::format("routing_train_from_step_{:08d}.h5", start_step);
  }
  writer_ = std::make_unique<RoutingTimeSeriesWriter>(
      path, so.n_layers, so.n_experts,
      RoutingTimeSeriesAttrs{{"router", config.router.type},
                             {"config", config_to_json(config).dump()},
                             {"git_rev", git_revision()},
                             {"stats_every", std::to_string(every_)}});
}

RoutingSeriesRecorder::~RoutingSeriesRecorder() = default;

void RoutingSeriesRecorder::before_step(int64_t index, TrainableModel& model) {
  recording_ = accumulator_ != nullptr && (index + 1) % every_ == 0;
  if (recording_) model.set_routing_sink(accumulator_.get());
}

void RoutingSeriesRecorder::after_step(int64_t step, TrainableModel& model) {
  if (!recording_) return;
  recording_ = false;
  model.set_routing_sink(nullptr);
  RoutingStatsSnapshot snapshot = accumulator_->snapshot();
  accumulator_->reset();
  if (dist_.active()) {
    const std::vector<std::string> all =
        dist_.gather_to_main(routing_stats_counts_to_json(snapshot).dump(), fmt::format("stats_{}", step));
    for (size_t r = 1; r < all.size(); ++r) {
      add_routing_stats(snapshot, routing_stats_counts_from_json(nlohmann::json::parse(all[r])));
    }
  }
  if (writer_) writer_->append(step, snapshot);
}

void RoutingSeriesRecorder::flush() {
  if (writer_) writer_->flush();
}

void RoutingSeriesRecorder::close() {
  if (writer_) writer_->close();
}

}  // namespace dirmoe
