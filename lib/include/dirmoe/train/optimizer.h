#pragma once
// AdamW with decoupled weight decay on matrices only (Loshchilov & Hutter 2019, "Decoupled Weight
// Decay Regularization"), and global-norm gradient clipping without a host synchronisation.
//
// Decay policy: every parameter with ≥ 2 dimensions decays (attention/expert/router matrices, the
// output head and the token embedding); 1-D parameters (RMSNorm gains, any bias or scalar) do
// not. NOTE: the embedding decays like the other matrices (as in Megatron-LM and nanoGPT): it is a
// matrix whose rows are read by lookup, and leaving it undecayed would let rare-token rows keep
// their initial noise scale while the untied head, a matrix of the same shape, is decayed.
#include <memory>
#include <string>
#include <vector>

#include <torch/nn/module.h>
#include <torch/optim/adamw.h>
#include <torch/types.h>

#include "dirmoe/config/config.h"

namespace dirmoe {

/// Trainable parameters split by the decay policy above, in the module's registration order.
struct ParameterGroups {
  std::vector<torch::Tensor> decay;
  std::vector<torch::Tensor> no_decay;
  std::vector<std::string> decay_names;
  std::vector<std::string> no_decay_names;
};

ParameterGroups split_parameters_for_decay(const torch::nn::Module& module);

/// torch::optim::AdamW whose step runs ATen's fused AdamW kernel (`_fused_adamw_`: one pass over
/// parameter, gradient and both moments, no temporaries) on each (device, dtype) bucket of a
/// group. Same update rule (decoupled decay p ← p·(1 − lr·wd), bias-corrected moments) and the same
/// per-parameter state (AdamWParamState: step, exp_avg, exp_avg_sq), so checkpoints are those of
/// torch::optim::AdamW. amsgrad is not supported.
class FusedAdamW : public torch::optim::AdamW {
 public:
  using torch::optim::AdamW::AdamW;
  torch::Tensor step(LossClosure closure = nullptr) override;
};

/// AdamW (FusedAdamW) over two groups: {decay, weight_decay = train.weight_decay} and
/// {no_decay, 0}. Betas and eps from the config; the learning rate is set every step by
/// set_learning_rate().
std::unique_ptr<torch::optim::AdamW> make_optimizer(const torch::nn::Module& module, const TrainConfig& train);

void set_learning_rate(torch::optim::Optimizer& optimizer, double lr);

/// Global L2 norm of all gradients, as a 0-dim float32 tensor on the parameters' device (no host
/// sync). If max_norm > 0 every gradient is scaled by min(1, max_norm/(norm + 1e-6)), the rule of
/// torch.nn.utils.clip_grad_norm_. Parameters without a gradient are skipped.
torch::Tensor clip_grad_norm(const std::vector<torch::Tensor>& parameters, double max_norm);

}  // namespace dirmoe
