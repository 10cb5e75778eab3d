#include "dirmoe/stats/routing_stats_merge.h"

#include <stdexcept>

#include <fmt/format.h>
#include <nlohmann/json.hpp>

namespace dirmoe {
namespace {

template <typename T>
void add_into(std::vector<T>& into, const std::vector<T>& from, const char* what) {
  if (into.size() != from.size()) {
    throw std::invalid_argument(fmt::format("routing statistics: {} has {} entries here and {} there", what,
                                            into.size(), from.size()));
  }
  for (size_t i = 0; i < into.size(); ++i) into[i] += from[i];
}

}  // namespace

void add_routing_stats(RoutingStatsSnapshot& into, const RoutingStatsSnapshot& from) {
  if (into.n_experts != from.n_experts || into.n_domains != from.n_domains || into.simpson_bins != from.simpson_bins ||
      into.layers.size() != from.layers.size()) {
    throw std::invalid_argument("routing statistics: snapshots of different shapes cannot be added");
  }
  for (size_t l = 0; l < into.layers.size(); ++l) {
    LayerRoutingStats& a = into.layers[l];
    const LayerRoutingStats& b = from.layers[l];
    a.n_tokens += b.n_tokens;
    add_into(a.tokens_per_expert, b.tokens_per_expert, "tokens_per_expert");
    add_into(a.weight_per_expert, b.weight_per_expert, "weight_per_expert");
    add_into(a.active_experts_hist, b.active_experts_hist, "active_experts_hist");
    add_into(a.domain_expert_tokens, b.domain_expert_tokens, "domain_expert_tokens");
    add_into(a.expert_coactivation, b.expert_coactivation, "expert_coactivation");
    add_into(a.token_simpson_hist, b.token_simpson_hist, "token_simpson_hist");
    a.token_simpson_sum += b.token_simpson_sum;
    a.token_simpson_count += b.token_simpson_count;
  }
}

nlohmann::json routing_stats_counts_to_json(const RoutingStatsSnapshot& snapshot) {
  nlohmann::json layers = nlohmann::json::array();
  for (const auto& l : snapshot.layers) {
    layers.push_back({{"n_tokens", l.n_tokens},
                      {"tokens_per_expert", l.tokens_per_expert},
                      {"weight_per_expert", l.weight_per_expert},
                      {"active_experts_hist", l.active_experts_hist},
                      {"domain_expert_tokens", l.domain_expert_tokens},
                      {"expert_coactivation", l.expert_coactivation},
                      {"token_simpson_hist", l.token_simpson_hist},
                      {"token_simpson_sum", l.token_simpson_sum},
                      {"token_simpson_count", l.token_simpson_count}});
  }
  return {{"n_experts", snapshot.n_experts},
          {"n_domains", snapshot.n_domains},
          {"simpson_bins", snapshot.simpson_bins},
          {"layers", layers}};
}

RoutingStatsSnapshot routing_stats_counts_from_json(const nlohmann::json& json) {
  RoutingStatsSnapshot s;
  s.n_experts = json.at("n_experts").get<int64_t>();
  s.n_domains = json.at("n_domains").get<int64_t>();
  s.simpson_bins = json.at("simpson_bins").get<int64_t>();
  for (const auto& j : json.at("layers")) {
    LayerRoutingStats l;
    l.n_tokens = j.at("n_tokens").get<int64_t>();
    l.tokens_per_expert = j.at("tokens_per_expert").get<std::vector<int64_t>>();
    l.weight_per_expert = j.at("weight_per_expert").get<std::vector<double>>();
    l.active_experts_hist = j.at("active_experts_hist").get<std::vector<int64_t>>();
    l.domain_expert_tokens = j.at("domain_expert_tokens").get<std::vector<double>>();
    l.expert_coactivation = j.at("expert_coactivation").get<std::vector<int64_t>>();
    l.token_simpson_hist = j.at("token_simpson_hist").get<std::vector<int64_t>>();
    l.token_simpson_sum = j.at("token_simpson_sum").get<double>();
    l.token_simpson_count = j.at("token_simpson_count").get<int64_t>();
    s.layers.push_back(std::move(l));
  }
  return s;
}

}  // namespace dirmoe
