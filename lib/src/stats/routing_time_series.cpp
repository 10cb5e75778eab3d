#include "dirmoe/stats/routing_time_series.h"

#include <H5Cpp.h>

#include <vector>

#include <fmt/format.h>

#include "dirmoe/core/atomic_file.h"
#include "dirmoe/core/error.h"
#include "dirmoe/stats/routing_metrics.h"
#include "dirmoe/stats/routing_stats_file.h"
#include "hdf5_util.h"

namespace dirmoe {

/// The rows appended so far, column by column (N rows).
struct RoutingTimeSeriesWriter::Series {
  std::vector<int64_t> step;                 // (N)
  std::vector<int64_t> n_tokens;             // (N)
  std::vector<std::vector<double>> load;     // per layer (N·E), row-major
  std::vector<std::vector<double>> active;   // per layer (N)
  std::vector<std::vector<double>> simpson;  // per layer (N)
};

namespace {

/// A dataset of shape (rows, width...) holding `values`, chunked and extendible along the first
/// axis like a series that grows (readers may rely on maxshape (None, ...)).
template <typename T>
void write_series(H5::Group& group, const std::string& name, const std::vector<T>& values, hsize_t rows,
                  hsize_t width) {
  const int rank = width > 0 ? 2 : 1;
  const hsize_t dims[2] = {rows, width};
  const hsize_t max_dims[2] = {H5S_UNLIMITED, width};
  const hsize_t chunk[2] = {256, std::max<hsize_t>(width, 1)};
  H5::DataSpace space(rank, dims, max_dims);
  H5::DSetCreatPropList props;
  props.setChunk(rank, chunk);
  H5::DataSet ds = group.createDataSet(name, h5::native_type<T>(), space, props);
  if (rows > 0) ds.write(values.data(), h5::native_type<T>());
}

}  // namespace

RoutingTimeSeriesWriter::RoutingTimeSeriesWriter(const std::filesystem::path& path, int64_t n_layers,
                                                 int64_t n_experts, const RoutingTimeSeriesAttrs& attrs,
                                                 std::chrono::milliseconds min_rewrite_interval)
    : path_(path),
      n_layers_(n_layers),
      n_experts_(n_experts),
      attrs_(attrs),
      min_rewrite_interval_(min_rewrite_interval),
      series_(std::make_unique<Series>()) {
  if (n_layers <= 0 || n_experts <= 0) {
    throw IoError(fmt::format("{}: n_layers and n_experts must be positive", path.string()));
  }
  series_->load.resize(static_cast<size_t>(n_layers));
  series_->active.resize(static_cast<size_t>(n_layers));
  series_->simpson.resize(static_cast<size_t>(n_layers));
  rewrite();
}

RoutingTimeSeriesWriter::~RoutingTimeSeriesWriter() {
  try {
    close();
  } catch (...) {
  }
}

int64_t RoutingTimeSeriesWriter::rows() const { return static_cast<int64_t>(series_->step.size()); }

void RoutingTimeSeriesWriter::append(int64_t step, const RoutingStatsSnapshot& snapshot) {
  if (closed_) throw IoError(fmt::format("{}: append after close", path_.string()));
  if (static_cast<int64_t>(snapshot.layers.size()) != n_layers_ || snapshot.n_experts != n_experts_) {
    throw IoError(fmt::format("{}: snapshot has {} layers × {} experts, the file {} × {}", path_.string(),
                              snapshot.layers.size(), snapshot.n_experts, n_layers_, n_experts_));
  }
  auto& s = *series_;
  s.step.push_back(step);
  s.n_tokens.push_back(snapshot.layers.front().n_tokens);
  for (int64_t i = 0; i < n_layers_; ++i) {
    const auto& l = snapshot.layers[static_cast<size_t>(i)];
    auto& load = s.load[static_cast<size_t>(i)];
    for (int64_t e = 0; e < n_experts_; ++e) {
      load.push_back(l.n_tokens > 0 ? static_cast<double>(l.tokens_per_expert[static_cast<size_t>(e)]) / l.n_tokens
                                    : 0.0);
    }
    s.active[static_cast<size_t>(i)].push_back(stats::mean_active_experts(l.active_experts_hist));
    s.simpson[static_cast<size_t>(i)].push_back(l.token_simpson_mean());
  }
  if (std::chrono::steady_clock::now() - last_rewrite_ >= min_rewrite_interval_) rewrite();
}

void RoutingTimeSeriesWriter::flush() {
  if (rows() != rows_on_disk_) rewrite();
}

void RoutingTimeSeriesWriter::close() {
  if (closed_) return;
  closed_ = true;
  flush();
}

void RoutingTimeSeriesWriter::rewrite() {
  const auto& s = *series_;
  const auto N = static_cast<hsize_t>(rows());
  const auto E = static_cast<hsize_t>(n_experts_);
  std::string image;
  try {
    H5::Exception::dontPrint();
    image = h5::build_file_image(path_.string(), [&](H5::H5File& f) {
      h5::write_attr(f, "format_version", kRoutingTimeSeriesFormatVersion);
      h5::write_attr(f, "n_layers", n_layers_);
      h5::write_attr(f, "n_experts", n_experts_);
      for (const auto& [key, value] : attrs_) h5::write_attr(f, key, value);
      H5::Group train = f.createGroup("train");
      h5::write_attr(train, "rows", static_cast<int64_t>(N));
      write_series(train, "step", s.step, N, 0);
      write_series(train, "n_tokens", s.n_tokens, N, 0);
      for (int64_t i = 0; i < n_layers_; ++i) {
        H5::Group g = train.createGroup(routing_layer_name(i));
        write_series(g, "load", s.load[static_cast<size_t>(i)], N, E);
        write_series(g, "active_experts", s.active[static_cast<size_t>(i)], N, 0);
        write_series(g, "token_simpson", s.simpson[static_cast<size_t>(i)], N, 0);
      }
    });
  } catch (const H5::Exception& e) {
    throw IoError(fmt::format("{}: building the routing time series failed in {}: {}", path_.string(),
                              e.getFuncName(), e.getDetailMsg()));
  }
  write_file_atomic(path_, image);
  rows_on_disk_ = static_cast<int64_t>(N);
  last_rewrite_ = std::chrono::steady_clock::now();
}

}  // namespace dirmoe
