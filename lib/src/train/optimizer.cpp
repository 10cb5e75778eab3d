#include "dirmoe/train/optimizer.h"

#include <algorithm>
#include <utility>

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

torch::Tensor FusedAdamW::step(LossClosure closure) {
  torch::NoGradGuard no_grad;
  torch::Tensor loss;
  if (closure != nullptr) {
    at::AutoGradMode enable_grad(true);
    loss = closure();
  }
  for (auto& group : param_groups_) {
    auto& options = static_cast<torch::optim::AdamWOptions&>(group.options());
    TORCH_CHECK(!options.amsgrad(), "FusedAdamW: amsgrad is not supported");
    // Buckets of parameters sharing device and dtype (one fused call each), in group order.
    struct Bucket {
      std::vector<torch::Tensor> params, grads, exp_avgs, exp_avg_sqs, steps;
    };
    std::vector<std::pair<std::pair<c10::Device, c10::ScalarType>, Bucket>> buckets;
    for (auto& p : group.params()) {
      if (!p.grad().defined()) continue;
      TORCH_CHECK(!p.grad().is_sparse(), "FusedAdamW: sparse gradients are not supported");
      auto& slot = state_[p.unsafeGetTensorImpl()];
      if (!slot) {
        auto fresh = std::make_unique<torch::optim::AdamWParamState>();
        fresh->step(0);
        fresh->exp_avg(torch::zeros_like(p, torch::MemoryFormat::Preserve));
        fresh->exp_avg_sq(torch::zeros_like(p, torch::MemoryFormat::Preserve));
        slot = std::move(fresh);
      }
      auto& state = static_cast<torch::optim::AdamWParamState&>(*slot);
      state.step(state.step() + 1);
      const auto key = std::make_pair(p.device(), p.scalar_type());
      auto it = std::find_if(buckets.begin(), buckets.end(), [&](const auto& b) { return b.first == key; });
      if (it == buckets.end()) it = buckets.insert(buckets.end(), {key, Bucket{}});
      Bucket& b = it->second;
      b.params.push_back(p);
      b.grads.push_back(p.grad());
      b.exp_avgs.push_back(state.exp_avg());
      b.exp_avg_sqs.push_back(state.exp_avg_sq());
      // The kernel reads the step count (already incremented) from a float tensor on the device.
      b.steps.push_back(torch::full({}, static_cast<double>(state.step()), p.options().dtype(torch::kFloat32)));
    }
    const auto [beta1, beta2] = options.betas();
    for (auto& [key, b] : buckets) {
      at::_fused_adamw_(b.params, b.grads, b.exp_avgs, b.exp_avg_sqs, /*max_exp_avg_sqs=*/{}, b.steps, options.lr(),
                        beta1, beta2, options.weight_decay(), options.eps(), /*amsgrad=*/false, /*maximize=*/false);
    }
  }
  return loss;
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
  return std::make_unique<FusedAdamW>(param_groups, torch::optim::AdamWOptions(train.lr));
}

void set_learning_rate(torch::optim::Optimizer& optimizer, double lr) {
  for (auto& group : optimizer.param_groups()) {
    static_cast<torch::optim::AdamWOptions&>(group.options()).lr(lr);
  }
}

torch::Tensor clip_grad_norm(const std::vector<torch::Tensor>& parameters, double max_norm) {
  torch::NoGradGuard no_grad;
  std::vector<torch::Tensor> grads;
  for (const auto& p : parameters) {
    if (p.grad().defined()) grads.push_back(p.grad());
  }
  if (grads.empty()) return torch::zeros({}, torch::kFloat32);
  // Per-tensor norms in the gradients' dtype (one multi-tensor call), then the norm of the norms in float32.
  std::vector<torch::Tensor> norms = at::_foreach_norm(grads, 2);
  for (auto& n : norms) n = n.to(torch::kFloat32);
  torch::Tensor total = torch::linalg_vector_norm(torch::stack(norms), 2);
  if (max_norm > 0) {
    const torch::Tensor coef = torch::clamp_max(max_norm / (total + 1e-6), 1.0);
    at::_foreach_mul_(grads, coef);
  }
  return total;
}

}  // namespace dirmoe
