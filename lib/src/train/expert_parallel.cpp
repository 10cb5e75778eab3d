#include "dirmoe/train/expert_parallel.h"

#include <fmt/format.h>
#include <torch/torch.h>

#include "dirmoe/core/error.h"

namespace dirmoe {
namespace {

/// The expert-parallel group as an ExpertExchange, on c10d's all-to-all.
class GroupExchange : public ExpertExchange {
 public:
  explicit GroupExchange(DistributedContext& group) : group_(group) {}
  int64_t rank() const override { return group_.rank(); }
  int64_t size() const override { return group_.world_size(); }
  torch::Tensor all_to_all(const torch::Tensor& input, const std::vector<int64_t>& output_splits,
                           const std::vector<int64_t>& input_splits) override {
    return group_.all_to_all(input, output_splits, input_splits);
  }

 private:
  DistributedContext& group_;
};

torch::optim::AdamWParamState* adamw_state(torch::optim::Optimizer* optimizer, const torch::Tensor& p) {
  if (optimizer == nullptr) return nullptr;
  auto& states = optimizer->state();
  const auto it = states.find(p.unsafeGetTensorImpl());
  if (it == states.end() || !it->second) return nullptr;
  auto* state = dynamic_cast<torch::optim::AdamWParamState*>(it->second.get());
  TORCH_CHECK(state != nullptr, "expert parallelism: the optimiser's state is not AdamW's");
  return state;
}

}  // namespace

ExpertParallel::ExpertParallel(DistributedContext& world, int64_t n, int64_t n_experts)
    : world_(world), n_(n), n_experts_(n_experts) {
  const int64_t w = world.world_size();
  if (n < 1 || w % n != 0) {
    throw ConfigError(fmt::format("model.expert_parallel = {} must divide the number of processes ({}); start a "
                                  "multiple of {} processes or set model.expert_parallel to a divisor of {}",
                                  n, w, n, w));
  }
  if (n_experts % n != 0) {
    throw ConfigError(fmt::format("model.expert_parallel = {} must divide model.n_experts = {}", n, n_experts));
  }
  const int64_t g = world.rank() / n;
  const int64_t r = world.rank() % n;
  std::vector<int64_t> ep_ranks, edp_ranks;
  for (int64_t i = 0; i < n; ++i) ep_ranks.push_back(g * n + i);
  for (int64_t i = r; i < w; i += n) edp_ranks.push_back(i);
  // NOTE: every process builds its two groups in the same order (expert-parallel first), so that
  // the rendezvous through the store never waits on a group that a peer builds later.
  expert_group_ = world.new_group(fmt::format("expert_parallel_{}", g), ep_ranks);
  expert_data_group_ = world.new_group(fmt::format("expert_data_parallel_{}", r), edp_ranks);
  exchange_ = std::make_shared<GroupExchange>(*expert_group_);
}

ExpertParallel::~ExpertParallel() = default;

void ExpertParallel::shard(TrainableModel& model, std::shared_ptr<ExpertExchange> through) {
  TORCH_CHECK(expert_params_.empty(), "expert parallelism: the model is sharded already");
  expert_params_ = model.shard_experts(through ? std::move(through) : exchange_);
  if (expert_params_.empty()) {
    throw ConfigError(fmt::format("model.expert_parallel = {}: this model has no experts to shard; set it to 1", n_));
  }
  for (const auto& p : expert_params_) expert_impls_.insert(p.unsafeGetTensorImpl());
}

bool ExpertParallel::is_expert(const torch::Tensor& parameter) const {
  return expert_impls_.count(parameter.unsafeGetTensorImpl()) > 0;
}

void ExpertParallel::broadcast(torch::nn::Module& module) {
  std::vector<torch::Tensor> shared;
  for (auto& p : module.parameters()) {
    if (!is_expert(p)) shared.push_back(p);
  }
  for (auto& b : module.buffers()) shared.push_back(b);
  world_.broadcast_tensors(shared);
  expert_data_group_->broadcast_tensors(expert_params_);
}

void ExpertParallel::reduce_gradients(const std::vector<torch::Tensor>& parameters) {
  std::vector<torch::Tensor> shared, experts;
  for (const auto& p : parameters) (is_expert(p) ? experts : shared).push_back(p);
  const double inv_world = 1.0 / static_cast<double>(world_.world_size());
  world_.reduce_gradients(shared, inv_world);
  expert_data_group_->reduce_gradients(experts, inv_world);
}

torch::Tensor ExpertParallel::clip_grad_norm(const std::vector<torch::Tensor>& parameters, double max_norm) {
  torch::NoGradGuard no_grad;
  std::vector<torch::Tensor> shared, experts;
  for (const auto& p : parameters) {
    if (p.grad().defined()) (is_expert(p) ? experts : shared).push_back(p.grad());
  }
  auto squared_norm = [](const std::vector<torch::Tensor>& grads, const torch::Device& device) {
    if (grads.empty()) return torch::zeros({}, torch::TensorOptions().dtype(torch::kFloat32).device(device));
    std::vector<torch::Tensor> norms = at::_foreach_norm(grads, 2);
    for (auto& v : norms) v = v.to(torch::kFloat32);
    return torch::stack(norms).square().sum();
  };
  if (shared.empty() && experts.empty()) return torch::zeros({}, torch::kFloat32);
  const torch::Device device = (shared.empty() ? experts : shared).front().device();
  torch::Tensor expert_sq = squared_norm(experts, device);
  expert_group_->sum_(expert_sq);  // every shard once: the group holds each expert exactly once
  const torch::Tensor total = torch::sqrt(squared_norm(shared, device) + expert_sq);
  if (max_norm > 0) {
    const torch::Tensor coef = torch::clamp_max(max_norm / (total + 1e-6), 1.0);
    std::vector<torch::Tensor> all = shared;
    all.insert(all.end(), experts.begin(), experts.end());
    at::_foreach_mul_(all, coef);
  }
  return total;
}

void ExpertParallel::with_full_model(torch::optim::Optimizer* optimizer, const std::function<void()>& on_main) {
  // Expert-parallel group 0 (world ranks 0..N−1) holds every shard once and contains rank 0.
  if (world_.rank() >= n_) return;
  torch::NoGradGuard no_grad;
  struct Swap {
    torch::Tensor param, shard, full;
    torch::optim::AdamWParamState* state = nullptr;
    torch::Tensor avg_shard, avg_full, sq_shard, sq_full;
  };
  std::vector<Swap> swaps;
  for (const auto& p : expert_params_) {
    Swap s;
    s.param = p;
    s.shard = p.detach();
    s.full = expert_group_->all_gather_cat(s.shard);
    s.state = adamw_state(optimizer, p);
    if (s.state != nullptr) {
      s.avg_shard = s.state->exp_avg();
      s.sq_shard = s.state->exp_avg_sq();
      s.avg_full = expert_group_->all_gather_cat(s.avg_shard);
      s.sq_full = expert_group_->all_gather_cat(s.sq_shard);
    }
    swaps.push_back(std::move(s));
  }
  if (!world_.is_main()) return;
  auto restore = [&] {
    for (auto& s : swaps) {
      s.param.set_data(s.shard);
      if (s.state != nullptr) {
        s.state->exp_avg(s.avg_shard);
        s.state->exp_avg_sq(s.sq_shard);
      }
    }
  };
  for (auto& s : swaps) {
    s.param.set_data(s.full);
    if (s.state != nullptr) {
      s.state->exp_avg(s.avg_full);
      s.state->exp_avg_sq(s.sq_full);
    }
  }
  try {
    on_main();
  } catch (...) {
    restore();
    throw;
  }
  restore();
}

void ExpertParallel::load_full_model(torch::optim::Optimizer* optimizer, const std::function<void()>& load) {
  torch::NoGradGuard no_grad;
  const int64_t local = n_experts_ / n_;
  const int64_t first = expert_group_->rank() * local;
  std::vector<torch::Tensor> shards;
  for (auto& p : expert_params_) {
    shards.push_back(p.detach());
    std::vector<int64_t> full = p.sizes().vec();
    full[0] = n_experts_;
    p.set_data(torch::zeros(full, p.options()));
  }
  try {
    load();
  } catch (...) {
    for (size_t i = 0; i < expert_params_.size(); ++i) expert_params_[i].set_data(shards[i]);
    throw;
  }
  auto keep = [&](const torch::Tensor& t) { return t.narrow(0, first, local).clone(); };
  for (auto& p : expert_params_) {
    p.set_data(keep(p.detach()));
    if (auto* state = adamw_state(optimizer, p)) {
      if (state->exp_avg().size(0) == n_experts_) state->exp_avg(keep(state->exp_avg()));
      if (state->exp_avg_sq().size(0) == n_experts_) state->exp_avg_sq(keep(state->exp_avg_sq()));
    }
  }
}

}  // namespace dirmoe
