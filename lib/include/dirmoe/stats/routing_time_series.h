#pragma once
// routing_train.h5: the routing time series written during training (DESIGN.md "/train/...").
//
//   /                          attrs format_version, n_layers, n_experts, plus the caller's attrs
//   /train                     attr rows: rows fully written (readers use the first `rows` rows)
//   /train/step                (N)     int64
//   /train/n_tokens            (N)     int64  tokens recorded per layer in each window
//   /train/layer_XX/load       (N, E)  float64  fraction of the window's tokens dispatched to each
//                                               expert (Σ_e = E[k])
//   /train/layer_XX/active_experts (N) float64  E[k]: mean dispatched experts per token
//   /train/layer_XX/token_simpson  (N) float64  mean Σ_e r_e² per token
//
// Datasets are chunked and extendible along N, "rows" equals N. The series is kept in memory and
// the whole file is rewritten atomically (built in memory, then temporary name + rename): at most
// once per `min_rewrite_interval` on append(), and always on flush() and close(). A run killed at
// any point, or one whose disk fills, leaves the last complete file, never a torn one; the rows
// appended since that rewrite are lost (the trainer flushes at every checkpoint, so a resumed run
// recomputes exactly those).
#include <chrono>
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
  /// Writes the empty series to `path` at once (truncating it), so a bad path fails before
  /// training starts. Throws IoError naming the path.
  RoutingTimeSeriesWriter(const std::filesystem::path& path, int64_t n_layers, int64_t n_experts,
                          const RoutingTimeSeriesAttrs& attrs = {},
                          std::chrono::milliseconds min_rewrite_interval = std::chrono::seconds(30));
  ~RoutingTimeSeriesWriter();
  RoutingTimeSeriesWriter(const RoutingTimeSeriesWriter&) = delete;
  RoutingTimeSeriesWriter& operator=(const RoutingTimeSeriesWriter&) = delete;

  /// Appends one row per dataset from `snapshot`, the accumulator's counts over the window ending
  /// at `step` (the caller resets the accumulator after each append); rewrites the file when the
  /// last rewrite is at least `min_rewrite_interval` old. Throws IoError naming the path.
  void append(int64_t step, const RoutingStatsSnapshot& snapshot);
  /// Rewrites the file with every row appended so far (no-op when nothing is new).
  void flush();
  /// Rows appended so far.
  int64_t rows() const;
  /// Rows in the file on disk.
  int64_t rows_on_disk() const { return rows_on_disk_; }
  /// Flushes; later appends throw. The destructor does the same and swallows errors.
  void close();

  const std::filesystem::path& path() const { return path_; }

 private:
  void rewrite();

  struct Series;
  std::filesystem::path path_;
  int64_t n_layers_;
  int64_t n_experts_;
  RoutingTimeSeriesAttrs attrs_;
  std::chrono::milliseconds min_rewrite_interval_;
  std::chrono::steady_clock::time_point last_rewrite_;
  std::unique_ptr<Series> series_;
  int64_t rows_on_disk_ = 0;
  bool closed_ = false;
};

}  // namespace dirmoe
