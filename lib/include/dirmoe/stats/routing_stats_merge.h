#pragma once
// Routing statistics of disjoint token sets combined into those of their union: every figure of
// LayerRoutingStats is a sum over tokens, so the union's is the sum of the parts'. The trainer
// uses it to gather each process's counts on rank 0, so that routing_train.h5 holds the whole
// global batch as a single process would.
#include <string>

#include <nlohmann/json_fwd.hpp>

#include "dirmoe/stats/routing_stats_snapshot.h"

namespace dirmoe {

/// Adds `from`'s counts into `into`; both must have the same n_experts, n_domains, bins and layers.
/// Traces are not merged (into's stays). Throws std::invalid_argument on a shape mismatch.
void add_routing_stats(RoutingStatsSnapshot& into, const RoutingStatsSnapshot& from);

/// The counts (no trace) as JSON, and back: how a snapshot travels between processes.
nlohmann::json routing_stats_counts_to_json(const RoutingStatsSnapshot& snapshot);
RoutingStatsSnapshot routing_stats_counts_from_json(const nlohmann::json& json);

}  // namespace dirmoe
