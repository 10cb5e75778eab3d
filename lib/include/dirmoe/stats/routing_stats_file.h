#pragma once
// routing.h5: the routing statistics of one checkpoint over a labelled split, in the schema of
// DESIGN.md "Routing statistics (HDF5)":
//
//   /                  attrs format_version, router, n_layers, n_experts, k_target, step, config, git_rev
//   /domains                            (Dn)     string
//   /layer_XX/tokens_per_expert         (E)      int64   (attr n_tokens on the group)
//   /layer_XX/weight_per_expert         (E)      float64
//   /layer_XX/active_experts_hist       (E+1)    int64
//   /layer_XX/domain_expert_tokens      (Dn, E)  float64
//   /layer_XX/expert_coactivation       (E, E)   int64
//   /layer_XX/token_simpson             (bins)   int64   attrs mean, count, range_min, range_max
//   /layer_XX/expert_domain_simpson     (E)      float64 Σ_d p(d|e)²
//   /layer_XX/expert_domain_simpson_normalized (E) float64 (S − 1/Dn)/(1 − 1/Dn)
//   /layer_XX/domain_expert_simpson     (Dn)     float64 Σ_e p(e|d)²
//   /trace/token_ids (N) int64, domain_ids (N) int32, expert_ids (L, N, K) int16 (−1 padded),
//         weights (L, N, K) float32 — optional, chunked + gzip
//
// The derived Simpson datasets are written for readers without this library; the reader
// recomputes nothing from them (the raw counts are the source of truth).
#include <cstdint>
#include <filesystem>
#include <string>
#include <vector>

#include "dirmoe/stats/routing_stats_snapshot.h"

namespace dirmoe {

/// Version of the routing.h5 layout; the reader refuses any other.
constexpr int64_t kRoutingFormatVersion = 1;

struct RoutingFileAttributes {
  std::string router;        // router type, as in the config
  int64_t k_target = 0;      // configured expected active experts
  int64_t step = 0;          // training step of the checkpoint
  std::string config_json;   // the resolved run config
  std::string git_rev;       // revision of the build that wrote the file
};

struct RoutingStatsFile {
  RoutingFileAttributes attrs;
  std::vector<std::string> domains;  // (Dn) names, index = domain id
  RoutingStatsSnapshot stats;
};

/// Writes `file` to `path` through a temporary name + rename. Throws IoError naming the path.
void write_routing_stats(const std::filesystem::path& path, const RoutingStatsFile& file);

/// Loads a routing.h5 back. Throws IoError naming the file and what is wrong: not HDF5 or
/// truncated, not a dirmoe routing file (no format_version), another format_version, a missing
/// attribute or dataset, or a dataset of the wrong shape.
RoutingStatsFile read_routing_stats(const std::filesystem::path& path);

/// "layer_03"
std::string routing_layer_name(int64_t layer);

}  // namespace dirmoe
