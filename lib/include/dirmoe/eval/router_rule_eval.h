#pragma once
// The validation loss of one checkpoint under the router's two rules (docs/dirmoe.md H10): the
// evaluation rule every tool uses (no router noise: DirMoE's g = 0 and θ = E[θ], SparseMixer's argmax)
// and the training rule the model was trained with (noise on, a fresh draw per pass), averaged over
// draws. If the two differ, the evaluation rule scores a model that was never trained as such.
#include <cstdint>
#include <vector>

#include <nlohmann/json.hpp>
#include <torch/types.h>

#include "dirmoe/model/decoder.h"

namespace dirmoe::eval {

/// One rule's figures over the windows.
struct RouterRuleNll {
  double nll = 0.0;                          // mean next-token NLL (nats per token); the mean over draws
  double nll_std = 0.0;                      // standard deviation over draws (0 for the evaluation rule)
  int64_t n_tokens = 0;                      // predicted tokens per pass
  int64_t draws = 0;                         // passes averaged (1 for the evaluation rule)
  std::vector<double> dispatched_weight_L;   // per layer: mean combine weight of the dispatched experts
};

/// Scores `windows` (token sequences of ≥ 2 tokens, each at most the model's seq_len) in batches of
/// `batch_size`, under the evaluation rule (`draws` = 0) or under the training rule with `draws` passes,
/// pass d keyed by RouterNoiseKey{seed, kRouterRuleDrawBase + d, ...} (router_noise_source.h), so that the
/// figures are reproducible and no training draw is reused. No gradient; the model's mode is restored.
RouterRuleNll router_rule_nll(Decoder& model, const std::vector<std::vector<int64_t>>& windows, int64_t batch_size,
                              const torch::Device& device, int64_t draws, uint64_t seed);

/// Draw numbers of router_rule_nll start here: above any training step·grad_accum of a real run, inside
/// the counter generator's 32-bit draw field (router_noise_source.h).
inline constexpr int64_t kRouterRuleDrawBase = int64_t{1} << 31;

/// {"eval_rule": {...}, "train_rule": {...}, "difference_nll": train − eval} as dirmoe-eval reports it.
nlohmann::json router_rules_json(const RouterRuleNll& eval_rule, const RouterRuleNll& train_rule);

}  // namespace dirmoe::eval
