#pragma once
// Host copies of the routing statistics (DESIGN.md "Routing statistics (HDF5)"): what the
// accumulator hands out, what the HDF5 writer saves and the reader loads back. Matrices are
// row-major vectors; shapes are in the comments.
#include <cstdint>
#include <optional>
#include <string>
#include <vector>

namespace dirmoe {

/// One layer's accumulated routing over every recorded token.
///
/// Per token t with dispatch mask m_te and combine weight w_te, r_te = m_te·w_te / Σ_e m_te·w_te is
/// the token's routing distribution over its dispatched experts (a token whose masked weights sum
/// to 0 has none and is left out of the Simpson and domain figures).
struct LayerRoutingStats {
  int64_t n_tokens = 0;                       // tokens recorded
  std::vector<int64_t> tokens_per_expert;     // (E) Σ_t m_te
  std::vector<double> weight_per_expert;      // (E) Σ_t m_te·w_te
  std::vector<int64_t> active_experts_hist;   // (E+1) tokens with 0..E dispatched experts
  std::vector<double> domain_expert_tokens;   // (Dn, E) Σ_{t in d} r_te: each token spreads unit mass
  std::vector<int64_t> expert_coactivation;   // (E, E) Σ_t m_te·m_tf (diagonal = tokens_per_expert)
  std::vector<int64_t> token_simpson_hist;    // (bins) over [0, 1]: Σ_e r_te² per token
  double token_simpson_sum = 0;               // Σ_t Σ_e r_te² over tokens with a distribution
  int64_t token_simpson_count = 0;            // tokens with a routing distribution

  double token_simpson_mean() const;
};

/// Subsampled per-token routing decisions, for inspection beside the aggregates.
struct RoutingTrace {
  int64_t max_active = 0;              // K: width of expert_ids/weights (padded with -1 / 0)
  std::vector<int64_t> token_ids;      // (N) token id, -1 when not given
  std::vector<int32_t> domain_ids;     // (N) domain id, -1 when not given
  std::vector<int16_t> expert_ids;     // (L, N, K) dispatched experts of each traced token, by weight
  std::vector<float> weights;          // (L, N, K) their combine weights
  int64_t n_tokens() const { return static_cast<int64_t>(token_ids.size()); }
};

struct RoutingStatsSnapshot {
  int64_t n_experts = 0;
  int64_t n_domains = 0;   // 0 when no domain labels were given
  int64_t simpson_bins = 0;
  std::vector<LayerRoutingStats> layers;
  std::optional<RoutingTrace> trace;
};

}  // namespace dirmoe
