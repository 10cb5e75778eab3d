#include "dirmoe/stats/routing_report.h"

#include <algorithm>
#include <cmath>
#include <filesystem>
#include <numeric>

#include <fmt/format.h>
#include <nlohmann/json.hpp>

#include "dirmoe/core/error.h"
#include "dirmoe/stats/routing_metrics.h"

namespace dirmoe {
using nlohmann::json;

namespace {

/// Mean of the finite values weighted by w (NaN if none).
double weighted_mean(const std::vector<double>& values, const std::vector<double>& weights) {
  double num = 0, den = 0;
  for (size_t i = 0; i < values.size(); ++i) {
    if (std::isfinite(values[i]) && weights[i] > 0) {
      num += values[i] * weights[i];
      den += weights[i];
    }
  }
  return den > 0 ? num / den : std::nan("");
}

std::string num(double v, int digits = 3) { return std::isfinite(v) ? fmt::format("{:.{}f}", v, digits) : "—"; }
json jnum(double v) { return std::isfinite(v) ? json(v) : json(nullptr); }

LayerReport layer_report(const LayerRoutingStats& l, int64_t layer, int64_t n_domains, int64_t n_experts,
                         int64_t top_n) {
  LayerReport r;
  r.layer = layer;
  r.n_tokens = l.n_tokens;
  const auto tokens = stats::to_double(l.tokens_per_expert);
  r.load_max_over_mean = stats::load_imbalance(tokens);
  r.load_cv = stats::coefficient_of_variation(tokens);
  r.load_entropy = stats::entropy(tokens);
  r.active_experts = stats::mean_active_experts(l.active_experts_hist);
  r.token_simpson = l.token_simpson_mean();
  r.effective_experts = stats::effective_number(r.token_simpson);

  const auto& M = l.domain_expert_tokens;
  std::vector<double> expert_mass(static_cast<size_t>(n_experts), 0.0), domain_mass(static_cast<size_t>(n_domains), 0.0);
  for (int64_t d = 0; d < n_domains; ++d) {
    for (int64_t e = 0; e < n_experts; ++e) {
      expert_mass[e] += M[d * n_experts + e];
      domain_mass[d] += M[d * n_experts + e];
    }
  }
  auto ed = stats::expert_domain_simpson(M, n_domains, n_experts);
  for (auto& v : ed) v = stats::normalized_simpson(v, n_domains);
  r.expert_domain_specialization = weighted_mean(ed, expert_mass);
  r.domain_expert_simpson = weighted_mean(stats::domain_expert_simpson(M, n_domains, n_experts), domain_mass);

  r.top_experts.resize(static_cast<size_t>(n_domains));
  for (int64_t d = 0; d < n_domains; ++d) {
    if (!(domain_mass[d] > 0)) continue;
    std::vector<int64_t> order(static_cast<size_t>(n_experts));
    std::iota(order.begin(), order.end(), 0);
    std::stable_sort(order.begin(), order.end(),
                     [&](int64_t a, int64_t b) { return M[d * n_experts + a] > M[d * n_experts + b]; });
    for (int64_t i = 0; i < std::min(top_n, n_experts); ++i) {
      const int64_t e = order[i];
      r.top_experts[d].emplace_back(e, M[d * n_experts + e] / domain_mass[d]);
    }
  }
  return r;
}

LayerReport mean_of(const std::vector<LayerReport>& layers) {
  LayerReport m;
  m.layer = -1;
  auto avg = [&](double LayerReport::*field) {
    double sum = 0;
    int n = 0;
    for (const auto& l : layers) {
      if (std::isfinite(l.*field)) {
        sum += l.*field;
        ++n;
      }
    }
    return n > 0 ? sum / n : std::nan("");
  };
  m.n_tokens = layers.empty() ? 0 : layers.front().n_tokens;
  m.load_max_over_mean = avg(&LayerReport::load_max_over_mean);
  m.load_cv = avg(&LayerReport::load_cv);
  m.load_entropy = avg(&LayerReport::load_entropy);
  m.active_experts = avg(&LayerReport::active_experts);
  m.token_simpson = avg(&LayerReport::token_simpson);
  m.effective_experts = avg(&LayerReport::effective_experts);
  m.expert_domain_specialization = avg(&LayerReport::expert_domain_specialization);
  m.domain_expert_simpson = avg(&LayerReport::domain_expert_simpson);
  return m;
}

json layer_json(const LayerReport& l, const std::vector<std::string>& domains) {
  json j = {{"n_tokens", l.n_tokens},
            {"load_max_over_mean", jnum(l.load_max_over_mean)},
            {"load_cv", jnum(l.load_cv)},
            {"load_entropy", jnum(l.load_entropy)},
            {"active_experts", jnum(l.active_experts)},
            {"token_simpson", jnum(l.token_simpson)},
            {"effective_experts", jnum(l.effective_experts)},
            {"expert_domain_specialization", jnum(l.expert_domain_specialization)},
            {"domain_expert_simpson", jnum(l.domain_expert_simpson)}};
  if (l.layer >= 0) {
    j["layer"] = l.layer;
    json top = json::object();
    for (size_t d = 0; d < l.top_experts.size() && d < domains.size(); ++d) {
      json list = json::array();
      for (const auto& [e, share] : l.top_experts[d]) list.push_back({{"expert", e}, {"share", share}});
      top[domains[d]] = list;
    }
    j["top_experts_per_domain"] = top;
  }
  return j;
}

const char* kLayerHeader =
    "| layer | load max/mean | load CV | load entropy | E[k] | token Simpson | eff. experts | expert-domain "
    "Simpson (norm.) | domain-expert Simpson |\n|---|---|---|---|---|---|---|---|---|\n";

std::string layer_row(const std::string& label, const LayerReport& l) {
  return fmt::format("| {} | {} | {} | {} | {} | {} | {} | {} | {} |\n", label, num(l.load_max_over_mean),
                     num(l.load_cv), num(l.load_entropy), num(l.active_experts), num(l.token_simpson),
                     num(l.effective_experts, 2), num(l.expert_domain_specialization),
                     num(l.domain_expert_simpson));
}

std::string run_label(const RoutingReport& r) {
  return fmt::format("{} ({})", r.router, std::filesystem::path(r.source).parent_path().filename().string().empty()
                                              ? r.source
                                              : std::filesystem::path(r.source).parent_path().filename().string());
}

}  // namespace

RoutingReport make_routing_report(const RoutingStatsFile& file, const std::string& source, int64_t top_n,
                                  double load_threshold) {
  RoutingReport r;
  r.source = source;
  r.router = file.attrs.router;
  r.n_layers = static_cast<int64_t>(file.stats.layers.size());
  r.n_experts = file.stats.n_experts;
  r.k_target = file.attrs.k_target;
  r.step = file.attrs.step;
  r.git_rev = file.attrs.git_rev;
  r.domains = file.domains;
  for (int64_t i = 0; i < r.n_layers; ++i) {
    r.layers.push_back(layer_report(file.stats.layers[static_cast<size_t>(i)], i, file.stats.n_domains,
                                    file.stats.n_experts, top_n));
  }
  r.mean = mean_of(r.layers);
  r.load_threshold = load_threshold;
  for (const auto& l : r.layers) {
    if (std::isfinite(l.load_max_over_mean) && l.load_max_over_mean > load_threshold) r.load_flagged_layers.push_back(l.layer);
  }
  if (r.router == "dirmoe" && !file.attrs.config_json.empty()) {
    try {
      const Config config = config_from_json(json::parse(file.attrs.config_json), source + " config attribute");
      r.calibration = dirmoe_calibration(config, r.step);
    } catch (const std::exception& e) {
      throw IoError(fmt::format("{}: cannot read the DirMoE settings from the config attribute: {}", source, e.what()));
    }
  }
  return r;
}

std::string routing_report_markdown(const RoutingReport& r) {
  std::string md = fmt::format("# Routing report: {}\n\n", r.source);
  md += fmt::format("router `{}`, {} layers, E = {}, k target = {}, step {}, git {}, {} tokens per layer, "
                    "{} domains\n\n",
                    r.router, r.n_layers, r.n_experts, r.k_target, r.step, r.git_rev, r.mean.n_tokens,
                    r.domains.size());
  md += "## Per layer\n\n";
  md += kLayerHeader;
  for (const auto& l : r.layers) md += layer_row(fmt::format("{}", l.layer), l);
  md += layer_row("**mean**", r.mean);
  md += "\nLoad figures are over tokens per expert; token Simpson is Σ_e r_e² of each token's normalised "
        "routing weights (1 = one expert); expert-domain Simpson is normalised, (S − 1/Dn)/(1 − 1/Dn), "
        "averaged over experts by routed mass (0 = each expert sees the domain mix, 1 = one domain per "
        "expert).\n";
  if (r.load_flagged_layers.empty()) {
    md += fmt::format("\nLoad: no layer's load max/mean exceeds {}.\n", num(r.load_threshold, 2));
  } else {
    md += fmt::format("\n**Load concentrated:** layer{} {} exceed{} load max/mean {} (at most {} = every token on "
                      "one expert): the routing there leans on few experts.\n",
                      r.load_flagged_layers.size() > 1 ? "s" : "", fmt::join(r.load_flagged_layers, ", "),
                      r.load_flagged_layers.size() > 1 ? "" : "s", num(r.load_threshold, 2), r.n_experts);
  }
  if (r.router == "dirmoe") {
    md += "\nEvaluation-time rule (as in `dirmoe-eval`): an expert is dispatched when its noiseless gate logit "
          "ℓ_i > 0 (z̃_i > 0.5), a token with none keeps argmax ℓ, and θ = E[θ] = α^q/Σα^q; the E[k] above is "
          "measured under that rule.\n";
  }
  if (r.calibration) {
    const auto& c = *r.calibration;
    md += "\n## DirMoE calibration (prior at this step vs measured)\n\n| quantity | predicted | measured |\n|---|---|---|\n";
    md += fmt::format("| λ^p, a_hi, a_lo, τ_z | {}, {}, {}, {} | |\n", num(c.lambda_p, 3), num(c.a_hi, 3),
                      num(c.a_lo, 5), num(c.tau, 3));
    md += fmt::format("| active mass m = E[T] (Var) | {} ({}) | |\n", num(c.active_mass, 4), num(c.active_mass_var, 5));
    md += fmt::format("| E[k] | {} (target) | {} |\n", r.k_target, num(r.mean.active_experts));
    md += fmt::format("| Simpson E[Σθ²] | {} | {} (token Simpson of r) |\n", num(c.simpson), num(r.mean.token_simpson));
    md += fmt::format("| effective experts | {} | {} |\n", num(c.effective_experts, 2), num(r.mean.effective_experts, 2));
    md += fmt::format("| symmetric-Dirichlet λ giving that Simpson, (1−h)/(hE−1) | {} | {} |\n",
                      num(stats::dirichlet_lambda_for_simpson(c.simpson, r.n_experts)),
                      num(stats::dirichlet_lambda_for_simpson(r.mean.token_simpson, r.n_experts)));
  }
  if (!r.domains.empty()) {
    md += "\n## Top experts per domain\n\nexpert (share of the domain's routing weight)\n\n| layer |";
    for (const auto& d : r.domains) md += fmt::format(" {} |", d);
    md += "\n|---|";
    for (size_t d = 0; d < r.domains.size(); ++d) md += "---|";
    md += "\n";
    for (const auto& l : r.layers) {
      md += fmt::format("| {} |", l.layer);
      for (const auto& top : l.top_experts) {
        std::vector<std::string> parts;
        for (const auto& [e, share] : top) parts.push_back(fmt::format("{} ({:.2f})", e, share));
        md += fmt::format(" {} |", parts.empty() ? std::string("—") : fmt::format("{}", fmt::join(parts, ", ")));
      }
      md += "\n";
    }
  }
  return md;
}

json routing_report_json(const RoutingReport& r) {
  json j = {{"source", r.source},     {"router", r.router}, {"n_layers", r.n_layers},
            {"n_experts", r.n_experts}, {"k_target", r.k_target}, {"step", r.step},
            {"git_rev", r.git_rev},   {"domains", r.domains}};
  json layers = json::array();
  for (const auto& l : r.layers) layers.push_back(layer_json(l, r.domains));
  j["layers"] = layers;
  j["mean"] = layer_json(r.mean, r.domains);
  j["load_threshold"] = r.load_threshold;
  j["load_flagged_layers"] = r.load_flagged_layers;
  j["load_ok"] = r.load_flagged_layers.empty();
  if (r.calibration) {
    const auto& c = *r.calibration;
    j["dirmoe_calibration"] = {
        {"predicted",
         {{"step", c.step}, {"lambda_p", c.lambda_p}, {"a_hi", c.a_hi}, {"a_lo", c.a_lo}, {"tau", c.tau},
          {"active_mass", c.active_mass}, {"active_mass_var", c.active_mass_var}, {"simpson", jnum(c.simpson)},
          {"effective_experts", jnum(c.effective_experts)}, {"active_experts", r.k_target}}},
        {"measured",
         {{"active_experts", jnum(r.mean.active_experts)}, {"token_simpson", jnum(r.mean.token_simpson)},
          {"effective_experts", jnum(r.mean.effective_experts)}}}};
  }
  return j;
}

std::string compare_reports_markdown(const std::vector<RoutingReport>& reports) {
  std::string md = "# Routing comparison\n\nAverages over layers.\n\n";
  md += "| run | router | E | k | step | tokens | load max/mean | load CV | load entropy | E[k] | token Simpson "
        "| eff. experts | expert-domain Simpson (norm.) | domain-expert Simpson | load flagged layers |\n"
        "|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|\n";
  for (const auto& r : reports) {
    const auto& m = r.mean;
    md += fmt::format("| {} | {} | {} | {} | {} | {} | {} | {} | {} | {} | {} | {} | {} | {} | {} |\n", r.source,
                      r.router, r.n_experts, r.k_target, r.step, m.n_tokens, num(m.load_max_over_mean),
                      num(m.load_cv), num(m.load_entropy), num(m.active_experts), num(m.token_simpson),
                      num(m.effective_experts, 2), num(m.expert_domain_specialization),
                      num(m.domain_expert_simpson),
                      r.load_flagged_layers.empty() ? std::string("none")
                                                    : fmt::format("{}", fmt::join(r.load_flagged_layers, ", ")));
  }
  md += fmt::format("\nA layer is flagged when its load max/mean exceeds {}.\n",
                    reports.empty() ? num(kDefaultLoadThreshold, 2) : num(reports.front().load_threshold, 2));
  int64_t max_layers = 0;
  for (const auto& r : reports) max_layers = std::max(max_layers, r.n_layers);
  auto per_layer = [&](const std::string& title, double LayerReport::*field) {
    std::string t = fmt::format("\n## {} by layer\n\n| layer |", title);
    for (const auto& r : reports) t += fmt::format(" {} |", run_label(r));
    t += "\n|---|";
    for (size_t i = 0; i < reports.size(); ++i) t += "---|";
    t += "\n";
    for (int64_t i = 0; i < max_layers; ++i) {
      t += fmt::format("| {} |", i);
      for (const auto& r : reports) t += fmt::format(" {} |", i < r.n_layers ? num(r.layers[i].*field) : "");
      t += "\n";
    }
    return t;
  };
  md += per_layer("Load max/mean", &LayerReport::load_max_over_mean);
  md += per_layer("E[k]", &LayerReport::active_experts);
  md += per_layer("Token Simpson", &LayerReport::token_simpson);
  md += per_layer("Expert-domain Simpson (normalised)", &LayerReport::expert_domain_specialization);
  return md;
}

json compare_reports_json(const std::vector<RoutingReport>& reports) {
  json runs = json::array();
  for (const auto& r : reports) {
    json per_layer = json::array();
    for (const auto& l : r.layers) {
      per_layer.push_back({{"layer", l.layer},
                           {"load_max_over_mean", jnum(l.load_max_over_mean)},
                           {"active_experts", jnum(l.active_experts)},
                           {"token_simpson", jnum(l.token_simpson)},
                           {"expert_domain_specialization", jnum(l.expert_domain_specialization)}});
    }
    runs.push_back({{"source", r.source}, {"router", r.router}, {"n_experts", r.n_experts},
                    {"k_target", r.k_target}, {"step", r.step}, {"mean", layer_json(r.mean, r.domains)},
                    {"layers", per_layer}, {"load_threshold", r.load_threshold},
                    {"load_flagged_layers", r.load_flagged_layers}});
  }
  return {{"runs", runs}};
}

}  // namespace dirmoe
