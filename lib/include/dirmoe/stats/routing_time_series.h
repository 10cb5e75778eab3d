#pragma once
// routing_train.h5: the routing time series written during training (DESIGN.md "/train/...").
//
//   /                          attrs format_version, n_layers, n_experts, plus the caller's attrs
//   /train/step                (N)     int64
//   /train/n_tokens            (N)     int64  tokens recorded per layer in each window
//   /train/layer_XX/load       (N, E)  float64  fraction of the window's tokens dispatched to each
//                                               expert (Σ_e = E[k])
//   /train/layer_XX/active_experts (N) float64  E[k]: mean dispatched experts per token
//   /train/layer_XX/token_simpson  (N) float64  mean Σ_e r_e² per token
//
// Datasets are chunked and extendible along N. Each append() ends with H5Fflush, and the file uses
// the earliest on-disk format (no SWMR consistency flags), so a run killed at any point leaves a
// file that h5py opens, holding every window appended before the last flush.
#include <cstdint>
#include <filesystem>
#include <map>
#include <memory>
#include <string>

#include "dirmoe/stats/routing_stats_snapshot.h"

namespace dirmoe {

constexpr int64_t kRoutingTimeSeriesFormatVersion = 1;

/// Root attributes beside the sizes: "router", "config" (JSON), "git_rev", ...
using RoutingTimeSeriesAttrs = std::map<std::string, std::string>;

class RoutingTimeSeriesWriter {
 public:
  /// Creates (truncates) `path`. Throws IoError naming the path.
  RoutingTimeSeriesWriter(const std::filesystem::path& path, int64_t n_layers, int64_t n_experts,
                          const RoutingTimeSeriesAttrs& attrs = {});
  ~RoutingTimeSeriesWriter();
  RoutingTimeSeriesWriter(const RoutingTimeSeriesWriter&) = delete;
  RoutingTimeSeriesWriter& operator=(const RoutingTimeSeriesWriter&) = delete;

  /// Appends one row per dataset from `snapshot`, the accumulator's counts over the window ending
  /// at `step` (the caller resets the accumulator after each append), and flushes the file.
  void append(int64_t step, const RoutingStatsSnapshot& snapshot);
  /// Rows appended so far.
  int64_t rows() const;
  /// Flushes and closes; the destructor does the same and swallows errors.
  void close();

  const std::filesystem::path& path() const { return path_; }

 private:
  struct State;
  std::filesystem::path path_;
  int64_t n_layers_;
  int64_t n_experts_;
  std::unique_ptr<State> state_;
};

}  // namespace dirmoe
