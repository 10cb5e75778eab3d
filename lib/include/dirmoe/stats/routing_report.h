#pragma once
// Reports over routing.h5 files (DESIGN.md "Reports"): per-layer tables of load balance, active
// experts, token Simpson and expert-domain specialisation, top experts per domain; and a compare
// table across runs. Markdown for people, JSON for scripts; both from the same RoutingReport.
#include <cstdint>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include <nlohmann/json_fwd.hpp>

#include "dirmoe/stats/dirmoe_calibration.h"
#include "dirmoe/stats/routing_stats_file.h"

namespace dirmoe {

struct LayerReport {
  int64_t layer = 0;
  int64_t n_tokens = 0;
  double load_max_over_mean = 0;     // max_e / mean_e of tokens_per_expert
  double load_cv = 0;                // coefficient of variation of tokens_per_expert
  double load_entropy = 0;           // nats; ln E when balanced
  double active_experts = 0;         // E[k] from the active-experts histogram
  double token_simpson = 0;          // mean Σ_e r_e² per token
  double effective_experts = 0;      // 1 / token_simpson
  /// Mean over experts of the normalised expert-domain Simpson (S−1/Dn)/(1−1/Dn), each expert
  /// weighted by the routing mass it received (0: experts see the domain mix, 1: one domain each).
  double expert_domain_specialization = 0;
  /// Mean over domains (weighted by tokens) of Σ_e p(e|d)²: how concentrated a domain's routing is.
  double domain_expert_simpson = 0;
  /// Per domain (index = domain id): its top experts and their share p(e|d), largest first.
  std::vector<std::vector<std::pair<int64_t, double>>> top_experts;
};

/// A layer whose load max/mean (tokens per expert) exceeds this is flagged as concentrated: with
/// E = 8 the bound is 8 (every token on one expert); 2.0 means one expert takes at least twice its
/// fair share, i.e. a quarter of all tokens at E = 8. [ours]
constexpr double kDefaultLoadThreshold = 2.0;

struct RoutingReport {
  std::string source;        // file the report was made from
  std::string router;
  int64_t n_layers = 0;
  int64_t n_experts = 0;
  int64_t k_target = 0;
  int64_t step = 0;
  std::string git_rev;
  std::vector<std::string> domains;
  std::vector<LayerReport> layers;
  LayerReport mean;          // plain average of the per-layer figures (layer = −1)
  double load_threshold = kDefaultLoadThreshold;
  std::vector<int64_t> load_flagged_layers;  // layers whose load max/mean exceeds load_threshold
  std::optional<DirmoeCalibration> calibration;  // the prior's predictions when router = dirmoe
};

/// Computes the report from a loaded file; `top_n` experts are listed per domain; layers whose load
/// max/mean exceeds `load_threshold` are flagged. The DirMoE calibration is computed from the file's
/// config attribute when its router is "dirmoe".
RoutingReport make_routing_report(const RoutingStatsFile& file, const std::string& source, int64_t top_n = 3,
                                  double load_threshold = kDefaultLoadThreshold);

std::string routing_report_markdown(const RoutingReport& report);
nlohmann::json routing_report_json(const RoutingReport& report);

/// Side by side: one row per run with its layer-averaged figures, then the key figures per layer.
std::string compare_reports_markdown(const std::vector<RoutingReport>& reports);
nlohmann::json compare_reports_json(const std::vector<RoutingReport>& reports);

}  // namespace dirmoe
