#include "dirmoe/eval/router_rule_eval.h"

#include <algorithm>
#include <cmath>

#include <torch/torch.h>

namespace dirmoe::eval {
namespace {

/// NLL sum, predicted tokens and per-layer Σ dispatched weight of one pass over the windows.
struct Pass {
  double nll_sum = 0.0;
  int64_t n_tokens = 0;
  std::vector<double> weight_sum_L;
  int64_t batches = 0;
};

Pass score_pass(Decoder& model, const std::vector<std::vector<int64_t>>& windows, int64_t batch_size,
                const torch::Device& device, bool train_rule, uint64_t seed, int64_t draw) {
  Pass pass;
  for (size_t start = 0; start < windows.size(); start += static_cast<size_t>(batch_size)) {
    const size_t end = std::min(windows.size(), start + static_cast<size_t>(batch_size));
    // Windows of one batch share a length: the longest, right-padded; padded targets are ignored (-100).
    size_t len = 0;
    for (size_t i = start; i < end; ++i) len = std::max(len, windows[i].size());
    const int64_t B = static_cast<int64_t>(end - start);
    const int64_t T = static_cast<int64_t>(len) - 1;
    torch::Tensor inputs_BT = torch::zeros({B, T}, torch::kInt64);
    torch::Tensor targets_BT = torch::full({B, T}, -100, torch::kInt64);
    for (int64_t b = 0; b < B; ++b) {
      const auto& w = windows[start + static_cast<size_t>(b)];
      const int64_t n = static_cast<int64_t>(w.size()) - 1;
      const torch::Tensor tokens = torch::tensor(w, torch::kInt64);
      inputs_BT[b].narrow(0, 0, n).copy_(tokens.narrow(0, 0, n));
      targets_BT[b].narrow(0, 0, n).copy_(tokens.narrow(0, 1, n));
    }
    if (train_rule) {
      // Token offsets as the trainer's: the batch's first token's index among the pass's tokens.
      model->set_noise_key(RouterNoiseKey{seed, kRouterRuleDrawBase + draw, /*layer=*/0,
                                          static_cast<int64_t>(start) * T});
    }
    const DecoderOutput out = model->forward(inputs_BT.to(device));
    const int64_t V = out.logits_BTV.size(-1);
    const torch::Tensor targets = targets_BT.to(device).reshape({-1});
    pass.nll_sum += torch::nn::functional::cross_entropy(
                        out.logits_BTV.to(torch::kFloat32).reshape({-1, V}), targets,
                        torch::nn::functional::CrossEntropyFuncOptions().reduction(torch::kSum).ignore_index(-100))
                        .item<double>();
    pass.n_tokens += (targets != -100).sum().item<int64_t>();
    if (pass.weight_sum_L.empty()) pass.weight_sum_L.assign(out.layers.size(), 0.0);
    for (size_t l = 0; l < out.layers.size(); ++l) {
      const auto& metrics = out.layers[l].router_metrics;
      const auto it = metrics.find("dispatched_weight");
      if (it != metrics.end()) pass.weight_sum_L[l] += it->second.item<double>();
    }
    ++pass.batches;
  }
  return pass;
}

}  // namespace

RouterRuleNll router_rule_nll(Decoder& model, const std::vector<std::vector<int64_t>>& windows, int64_t batch_size,
                              const torch::Device& device, int64_t draws, uint64_t seed) {
  TORCH_CHECK(batch_size > 0, "router_rule_nll: batch_size must be positive");
  const bool was_training = model->is_training();
  const bool train_rule = draws > 0;
  torch::NoGradGuard no_grad;
  model->train(train_rule);
  RouterRuleNll result;
  result.draws = train_rule ? draws : 1;
  std::vector<double> nll_d;
  for (int64_t d = 0; d < result.draws; ++d) {
    const Pass pass = score_pass(model, windows, batch_size, device, train_rule, seed, d);
    result.n_tokens = pass.n_tokens;
    nll_d.push_back(pass.n_tokens > 0 ? pass.nll_sum / static_cast<double>(pass.n_tokens) : 0.0);
    if (result.dispatched_weight_L.empty()) result.dispatched_weight_L.assign(pass.weight_sum_L.size(), 0.0);
    for (size_t l = 0; l < pass.weight_sum_L.size(); ++l) {
      // mean over batches, then over draws
      result.dispatched_weight_L[l] += pass.weight_sum_L[l] / std::max<int64_t>(1, pass.batches) /
                                       static_cast<double>(result.draws);
    }
  }
  model->train(was_training);
  double mean = 0.0;
  for (double v : nll_d) mean += v / static_cast<double>(nll_d.size());
  double var = 0.0;
  for (double v : nll_d) var += (v - mean) * (v - mean);
  result.nll = mean;
  result.nll_std = nll_d.size() > 1 ? std::sqrt(var / static_cast<double>(nll_d.size() - 1)) : 0.0;
  return result;
}

nlohmann::json router_rules_json(const RouterRuleNll& eval_rule, const RouterRuleNll& train_rule) {
  auto one = [](const RouterRuleNll& r) {
    return nlohmann::json{{"nll", r.nll},
                          {"nll_std", r.nll_std},
                          {"perplexity", std::exp(r.nll)},
                          {"tokens", r.n_tokens},
                          {"draws", r.draws},
                          {"dispatched_weight_per_layer", r.dispatched_weight_L}};
  };
  return nlohmann::json{{"eval_rule", one(eval_rule)},
                        {"train_rule", one(train_rule)},
                        {"difference_nll", train_rule.nll - eval_rule.nll}};
}

}  // namespace dirmoe::eval
