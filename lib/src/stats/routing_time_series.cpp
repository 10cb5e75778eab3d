#include "dirmoe/stats/routing_time_series.h"

#include <H5Cpp.h>

#include <vector>

#include <fmt/format.h>

#include "dirmoe/core/error.h"
#include "dirmoe/stats/routing_metrics.h"
#include "dirmoe/stats/routing_stats_file.h"
#include "hdf5_util.h"

namespace dirmoe {

struct RoutingTimeSeriesWriter::State {
  H5::H5File file;
  H5::DataSet step;
  H5::DataSet n_tokens;
  std::vector<H5::DataSet> load, active, simpson;
  hsize_t rows = 0;
};

namespace {

/// An empty dataset of shape (0, width...) growing without limit along the first axis.
H5::DataSet extendible(H5::Group& group, const std::string& name, const H5::PredType& type, hsize_t width) {
  const int rank = width > 0 ? 2 : 1;
  const hsize_t dims[2] = {0, width};
  const hsize_t max_dims[2] = {H5S_UNLIMITED, width};
  const hsize_t chunk[2] = {256, std::max<hsize_t>(width, 1)};
  H5::DataSpace space(rank, dims, max_dims);
  H5::DSetCreatPropList props;
  props.setChunk(rank, chunk);
  return group.createDataSet(name, type, space, props);
}

template <typename T>
void append_row(H5::DataSet& ds, hsize_t row, const std::vector<T>& values) {
  const hsize_t width = values.size();
  const int rank = ds.getSpace().getSimpleExtentNdims();
  const hsize_t new_dims[2] = {row + 1, width};
  ds.extend(new_dims);
  H5::DataSpace file_space = ds.getSpace();
  const hsize_t start[2] = {row, 0};
  const hsize_t count[2] = {1, width};
  file_space.selectHyperslab(H5S_SELECT_SET, count, start);
  H5::DataSpace mem_space(rank, count);
  ds.write(values.data(), h5::native_type<T>(), mem_space, file_space);
}

}  // namespace

RoutingTimeSeriesWriter::RoutingTimeSeriesWriter(const std::filesystem::path& path, int64_t n_layers,
                                                 int64_t n_experts, const RoutingTimeSeriesAttrs& attrs)
    : path_(path), n_layers_(n_layers), n_experts_(n_experts), state_(std::make_unique<State>()) {
  if (n_layers <= 0 || n_experts <= 0) {
    throw IoError(fmt::format("{}: n_layers and n_experts must be positive", path.string()));
  }
  try {
    H5::Exception::dontPrint();
    // NOTE: default (earliest) file format on purpose: the newest format marks the file "open for
    // writing" in its superblock, and readers then refuse the file a killed run leaves behind.
    state_->file = H5::H5File(path.string(), H5F_ACC_TRUNC);
    auto& f = state_->file;
    h5::write_attr(f, "format_version", kRoutingTimeSeriesFormatVersion);
    h5::write_attr(f, "n_layers", n_layers);
    h5::write_attr(f, "n_experts", n_experts);
    for (const auto& [key, value] : attrs) h5::write_attr(f, key, value);
    H5::Group train = f.createGroup("train");
    state_->step = extendible(train, "step", H5::PredType::NATIVE_INT64, 0);
    state_->n_tokens = extendible(train, "n_tokens", H5::PredType::NATIVE_INT64, 0);
    for (int64_t i = 0; i < n_layers; ++i) {
      H5::Group g = train.createGroup(routing_layer_name(i));
      state_->load.push_back(extendible(g, "load", H5::PredType::NATIVE_DOUBLE, static_cast<hsize_t>(n_experts)));
      state_->active.push_back(extendible(g, "active_experts", H5::PredType::NATIVE_DOUBLE, 0));
      state_->simpson.push_back(extendible(g, "token_simpson", H5::PredType::NATIVE_DOUBLE, 0));
    }
    f.flush(H5F_SCOPE_GLOBAL);
  } catch (const H5::Exception& e) {
    throw IoError(fmt::format("{}: cannot create the routing time series: {}", path.string(), e.getDetailMsg()));
  }
}

RoutingTimeSeriesWriter::~RoutingTimeSeriesWriter() {
  try {
    close();
  } catch (...) {
  }
}

int64_t RoutingTimeSeriesWriter::rows() const { return state_ ? static_cast<int64_t>(state_->rows) : 0; }

void RoutingTimeSeriesWriter::append(int64_t step, const RoutingStatsSnapshot& snapshot) {
  if (!state_) throw IoError(fmt::format("{}: append after close", path_.string()));
  if (static_cast<int64_t>(snapshot.layers.size()) != n_layers_ || snapshot.n_experts != n_experts_) {
    throw IoError(fmt::format("{}: snapshot has {} layers × {} experts, the file {} × {}", path_.string(),
                              snapshot.layers.size(), snapshot.n_experts, n_layers_, n_experts_));
  }
  auto& st = *state_;
  try {
    const hsize_t row = st.rows;
    append_row<int64_t>(st.step, row, {step});
    append_row<int64_t>(st.n_tokens, row, {snapshot.layers.front().n_tokens});
    for (int64_t i = 0; i < n_layers_; ++i) {
      const auto& l = snapshot.layers[static_cast<size_t>(i)];
      std::vector<double> load(static_cast<size_t>(n_experts_), 0.0);
      if (l.n_tokens > 0) {
        for (int64_t e = 0; e < n_experts_; ++e) load[e] = static_cast<double>(l.tokens_per_expert[e]) / l.n_tokens;
      }
      append_row<double>(st.load[i], row, load);
      append_row<double>(st.active[i], row, {stats::mean_active_experts(l.active_experts_hist)});
      append_row<double>(st.simpson[i], row, {l.token_simpson_mean()});
    }
    st.file.flush(H5F_SCOPE_GLOBAL);
    st.rows = row + 1;
  } catch (const H5::Exception& e) {
    throw IoError(fmt::format("{}: appending step {} failed: {}", path_.string(), step, e.getDetailMsg()));
  }
}

void RoutingTimeSeriesWriter::close() {
  if (!state_) return;
  auto state = std::move(state_);
  try {
    state->file.flush(H5F_SCOPE_GLOBAL);
    state->file.close();
  } catch (const H5::Exception& e) {
    throw IoError(fmt::format("{}: closing failed: {}", path_.string(), e.getDetailMsg()));
  }
}

}  // namespace dirmoe
