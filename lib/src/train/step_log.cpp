#include "dirmoe/train/step_log.h"

#include <cmath>
#include <limits>
#include <map>
#include <utility>

#include <fmt/format.h>
#include <torch/torch.h>

#include "dirmoe/core/progress.h"
#include "dirmoe/train/run_counters.h"

namespace dirmoe {

double StepLogFigures::loss() const {
  double total = lm_loss;
  for (double v : aux_values) total += v;
  return total;
}

double StepLogFigures::aux_total() const {
  double total = 0;
  for (double v : aux_values) total += v;
  return total;
}

double StepLogFigures::active_experts_mean() const {
  double mean = 0;
  for (double v : active_experts_L) mean += v / static_cast<double>(active_experts_L.size());
  return mean;
}

StepLogFigures gather_step_figures(const TrainStepResult& r, const torch::Tensor& clipped_steps, DistributedContext& dist,
                                   int64_t n_layers) {
  const auto fopts = torch::TensorOptions().dtype(torch::kFloat32).device(r.lm_loss.device());
  TORCH_CHECK(r.active_experts_L.size(0) == n_layers, "model returned ", r.active_experts_L.size(0),
              " layer metrics, config.model.n_layers = ", n_layers);
  // Pack every logged scalar into one vector, average over ranks, copy to the host once.
  std::vector<torch::Tensor> packed{r.lm_loss.reshape({1})};
  std::vector<std::string> aux_names;
  for (const auto& [name, value] : r.aux_losses) {
    packed.push_back(value.reshape({1}));
    aux_names.push_back(name);
  }
  packed.push_back(r.grad_norm.to(fopts.device()).to(torch::kFloat32).reshape({1}));
  packed.push_back(r.active_experts_L);
  packed.push_back(r.dropped_L);
  std::vector<torch::Tensor> cv_parts;
  for (int64_t l = 0; l < n_layers; ++l) {
    const torch::Tensor& tpe = r.tokens_per_expert_L[static_cast<size_t>(l)];
    if (tpe.defined() && tpe.numel() > 0) {
      const torch::Tensor mean = tpe.mean();
      cv_parts.push_back((tpe.std(/*unbiased=*/false) / mean.clamp_min(1e-12)).reshape({1}));
    } else {
      cv_parts.push_back(torch::full({1}, std::numeric_limits<float>::quiet_NaN(), fopts));
    }
  }
  packed.push_back(torch::cat(cv_parts));
  std::vector<std::pair<int64_t, std::string>> router_keys;
  for (int64_t l = 0; l < n_layers; ++l) {
    for (const auto& [name, value] : r.router_metrics_L[static_cast<size_t>(l)]) {
      router_keys.emplace_back(l, name);
      packed.push_back(value.reshape({1}));
    }
  }
  std::vector<std::string> term_names;
  for (const auto& [name, norms_G] : r.grad_norm_terms) {
    term_names.push_back(name);
    packed.push_back(norms_G.to(torch::kFloat32).reshape({-1}));
  }
  packed.push_back(clipped_steps.to(fopts.device()).to(torch::kFloat32).reshape({1}));
  torch::Tensor all = torch::cat(packed).to(torch::kFloat32);
  dist.average_(all);
  const torch::Tensor host = all.cpu().to(torch::kFloat64).contiguous();
  const double* h = host.data_ptr<double>();
  size_t at = 0;

  StepLogFigures f;
  f.lm_loss = h[at++];
  f.aux_losses = nlohmann::json::object();
  for (const auto& name : aux_names) {
    f.aux_losses[name] = h[at];
    f.aux_values.push_back(h[at++]);
  }
  f.grad_norm = h[at++];
  std::vector<double> dropped(static_cast<size_t>(n_layers)), cv(dropped.size());
  f.active_experts_L.resize(dropped.size());
  for (auto& v : f.active_experts_L) v = h[at++];
  for (auto& v : dropped) v = h[at++];
  for (auto& v : cv) v = h[at++];
  std::map<std::string, std::pair<double, int64_t>> router_mean;
  std::vector<nlohmann::json> layer_router(dropped.size(), nlohmann::json::object());
  for (const auto& [l, name] : router_keys) {
    const double v = h[at++];
    layer_router[static_cast<size_t>(l)][name] = finite_or_null(v);
    auto& acc = router_mean[name];
    acc.first += v;
    acc.second += 1;
  }
  f.layers = nlohmann::json::array();
  for (size_t l = 0; l < dropped.size(); ++l) {
    f.layers.push_back({{"active_experts", finite_or_null(f.active_experts_L[l])},
                        {"load_cv", finite_or_null(cv[l])},
                        {"dropped_tokens", finite_or_null(dropped[l])},
                        {"router", layer_router[l]}});
  }
  f.router_metrics = nlohmann::json::object();
  for (const auto& [name, acc] : router_mean) {
    f.router_metrics[name] = finite_or_null(acc.first / static_cast<double>(acc.second));
  }
  f.grad_norm_terms = nlohmann::json::object();
  for (const auto& name : term_names) {
    nlohmann::json groups = nlohmann::json::object();
    for (const char* group : kGradNormGroups) groups[group] = finite_or_null(h[at++]);
    f.grad_norm_terms[name] = groups;
  }
  f.clipped_steps = std::round(h[at++]);
  return f;
}

nlohmann::json metrics_line(const StepLogFigures& f, const StepLogContext& c) {
  nlohmann::json line = {
      {"step", c.step},
      {"tokens", c.tokens},
      {"loss", finite_or_null(f.loss())},
      {"lm_loss", finite_or_null(f.lm_loss)},
      {"aux_losses", f.aux_losses},
      {"lr", c.lr},
      {"grad_norm", finite_or_null(f.grad_norm)},
      {"tokens_per_s", c.tokens_per_s},
      {"active_experts_target", c.active_experts_target},
      {"active_experts_mean", finite_or_null(f.active_experts_mean())},
      {"layers", f.layers},
      {"router_metrics", f.router_metrics},
      // NOTE: null until the model provides a FLOPs calculator (TrainableModel::flops_per_token).
      {"flops_per_token", c.flops_per_token ? nlohmann::json(*c.flops_per_token) : nlohmann::json(nullptr)},
  };
  if (!f.grad_norm_terms.empty()) line["grad_norm_terms"] = f.grad_norm_terms;
  if (c.val_loss) {
    line["val_loss"] = finite_or_null(*c.val_loss);
    line["val_ppl"] = finite_or_null(std::exp(*c.val_loss));
  }
  return line;
}

std::string progress_text(const StepLogFigures& f, const StepLogContext& c, int64_t max_steps, double eta_s) {
  std::string text = fmt::format("step {}/{} | lm loss {:.4f}", c.step, max_steps, f.lm_loss);
  if (!f.aux_losses.empty()) text += fmt::format(" (+aux {:.4f})", f.aux_total());
  text += fmt::format(" | {} tok/s | ETA {}", format_rate(c.tokens_per_s), format_duration(eta_s));
  text += c.val_loss ? fmt::format(" | val {:.4f}", *c.val_loss) : fmt::format(" | E[k] {:.3f}", f.active_experts_mean());
  return text;
}

}  // namespace dirmoe
