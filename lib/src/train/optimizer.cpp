#include "dirmoe/train/optimizer.h"

#include <torch/torch.h>

namespace dirmoe {

ParameterGroups split_parameters_for_decay(const torch::nn::Module& module) {
  ParameterGroups groups;
  for (const auto& item : module.named_parameters(/*recurse=*/true)) {
    if (!item.value().requires_grad()) continue;
    if (item.value().dim() >= 2) {
      groups.decay.push_back(item.value());
      groups.decay_names.push_back(item.key());
    } else {
      groups.no_decay.push_back(item.value());
      groups.no_decay_names.push_back(item.key());
    }
  }
  return groups;
}

std::unique_ptr<torch::optim::AdamW> make_optimizer(const torch::nn::Module& module, const TrainConfig& train) {
  const ParameterGroups groups = split_parameters_for_decay(module);
  auto options = [&](double weight_decay) {
    return std::make_unique<torch::optim::AdamWOptions>(
        torch::optim::AdamWOptions(train.lr)
            .betas({train.adam_beta1, train.adam_beta2})
            .eps(train.adam_eps)
            .weight_decay(weight_decay));
  };
  std::vector<torch::optim::OptimizerParamGroup> param_groups;
  // NOTE: both groups are always present (possibly empty) so that the optimiser's state layout —
  // and so a checkpoint — does not depend on which kinds of parameters a model has.
  param_groups.emplace_back(groups.decay, options(train.weight_decay));
  param_groups.emplace_back(groups.no_decay, options(0.0));
  return std::make_unique<torch::optim::AdamW>(param_groups, torch::optim::AdamWOptions(train.lr));
}

void set_learning_rate(torch::optim::Optimizer& optimizer, double lr) {
  for (auto& group : optimizer.param_groups()) {
    static_cast<torch::optim::AdamWOptions&>(group.options()).lr(lr);
  }
}

torch::Tensor clip_grad_norm(const std::vector<torch::Tensor>& parameters, double max_norm) {
  std::vector<torch::Tensor> norms;
  std::vector<torch::Tensor> grads;
  for (const auto& p : parameters) {
    if (!p.grad().defined()) continue;
    grads.push_back(p.grad());
    norms.push_back(torch::linalg_vector_norm(p.grad().detach().to(torch::kFloat32), 2));
  }
  if (grads.empty()) return torch::zeros({}, torch::kFloat32);
  torch::Tensor total = torch::linalg_vector_norm(torch::stack(norms), 2);
  if (max_norm > 0) {
    torch::NoGradGuard no_grad;
    const torch::Tensor coef = torch::clamp_max(max_norm / (total + 1e-6), 1.0);
    for (auto& g : grads) g.mul_(coef.to(g.dtype()));
  }
  return total;
}

}  // namespace dirmoe
