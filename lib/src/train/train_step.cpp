#include "dirmoe/train/train_step.h"

#include <ATen/autocast_mode.h>
#include <torch/torch.h>

#include "dirmoe/train/optimizer.h"

namespace dirmoe {

AutocastScope::AutocastScope(bool on) : on_(on) {
  if (!on_) return;
  prev_enabled_ = at::autocast::is_autocast_enabled(at::kCUDA);
  prev_dtype_ = at::autocast::get_autocast_dtype(at::kCUDA);
  at::autocast::set_autocast_enabled(at::kCUDA, true);
  at::autocast::set_autocast_dtype(at::kCUDA, at::kBFloat16);
  at::autocast::increment_nesting();
}

AutocastScope::~AutocastScope() {
  if (!on_) return;
  if (at::autocast::decrement_nesting() == 0) at::autocast::clear_cache();
  at::autocast::set_autocast_enabled(at::kCUDA, prev_enabled_);
  at::autocast::set_autocast_dtype(at::kCUDA, prev_dtype_);
}

namespace {

/// The step's routing figures over the global batch: one all-reduce of E[k]/W, dropped pairs and
/// tokens per expert (in place in `r`).
void reduce_routing_figures(TrainStepResult& r, DistributedContext& dist) {
  torch::NoGradGuard no_grad;
  if (!r.active_experts_L.defined()) return;
  const int64_t L = r.active_experts_L.size(0);
  std::vector<torch::Tensor> parts{r.active_experts_L / static_cast<double>(dist.world_size()), r.dropped_L};
  std::vector<int64_t> sizes{L, L};
  for (const auto& tpe : r.tokens_per_expert_L) {
    if (!tpe.defined()) continue;
    parts.push_back(tpe.reshape({-1}));
    sizes.push_back(tpe.numel());
  }
  torch::Tensor packed = torch::cat(parts);
  dist.sum_(packed);
  const std::vector<torch::Tensor> back = packed.split_with_sizes(sizes);
  r.active_experts_L = back[0];
  r.dropped_L = back[1];
  size_t i = 2;
  for (auto& tpe : r.tokens_per_expert_L) {
    if (tpe.defined()) tpe = back[i++].view_as(tpe);
  }
}

/// Replaces each router's controller measurement by its mean over ranks, so that every rank moves
/// ReMoE's λ or DirMoE's λ_s from the whole batch (equal rows per rank: the mean of the means).
void average_controller_measurements(TrainableModel& model, DistributedContext& dist) {
  std::vector<torch::Tensor> measured = model.controller_measurements();
  std::vector<torch::Tensor> parts;
  for (const auto& m : measured) {
    if (m.defined()) parts.push_back(m.detach().reshape({1}).to(torch::kFloat64));
  }
  if (parts.empty()) return;
  torch::Tensor packed = torch::cat(parts);
  dist.average_(packed);
  int64_t i = 0;
  for (auto& m : measured) {
    if (m.defined()) m = packed[i++].to(m.scalar_type());
  }
  model.set_controller_measurements(measured);
}

/// Which of kGradNormGroups a parameter belongs to, by its module path: trunk (not a router parameter),
/// router, and gate (a gate parameter is also a router parameter).
struct ParameterGroup {
  torch::Tensor param;
  bool router = false;
  bool gate = false;
};

std::vector<ParameterGroup> parameter_groups(torch::nn::Module& module) {
  std::vector<ParameterGroup> groups;
  for (const auto& item : module.named_parameters(/*recurse=*/true)) {
    if (!item.value().requires_grad()) continue;
    const std::string& name = item.key();
    ParameterGroup g;
    g.param = item.value();
    g.router = name.find("router.") != std::string::npos;
    // Switch, ReMoE and SparseMixer: the router's one matrix "router.weight"; DirMoE: "router.gate.*"
    const auto ends_with = [&](const std::string& tail) {
      return name.size() >= tail.size() && name.compare(name.size() - tail.size(), tail.size(), tail) == 0;
    };
    g.gate = g.router && (ends_with("router.weight") || name.find("router.gate.") != std::string::npos);
    groups.push_back(std::move(g));
  }
  return groups;
}

/// ‖∂term/∂θ‖ over each group of kGradNormGroups, (3) float32: one backward pass of `term` alone.
torch::Tensor term_grad_norms(const torch::Tensor& term, const std::vector<ParameterGroup>& groups,
                              const torch::TensorOptions& fopts) {
  std::vector<torch::Tensor> inputs;
  inputs.reserve(groups.size());
  for (const auto& g : groups) inputs.push_back(g.param);
  const std::vector<torch::Tensor> grads =
      torch::autograd::grad({term}, inputs, /*grad_outputs=*/{}, /*retain_graph=*/true, /*create_graph=*/false,
                            /*allow_unused=*/true);
  torch::NoGradGuard no_grad;
  torch::Tensor sq_G = torch::zeros({3}, fopts);
  for (size_t i = 0; i < groups.size(); ++i) {
    if (!grads[i].defined()) continue;
    const torch::Tensor sq = grads[i].to(torch::kFloat32).square().sum().reshape({1});
    sq_G.narrow(0, groups[i].router ? 1 : 0, 1).add_(sq);
    if (groups[i].gate) sq_G.narrow(0, 2, 1).add_(sq);
  }
  return sq_G.sqrt();
}

}  // namespace

TrainStepResult train_step(int64_t step_index, TrainableModel& model, torch::optim::Optimizer& optimizer,
                           const std::vector<torch::Tensor>& params, BatchSource& source, DistributedContext& dist,
                           const TrainStepOptions& o) {
  const int64_t B = o.batch_size;
  const int64_t A = o.grad_accum;
  const int64_t W = dist.world_size();
  const auto fopts = torch::TensorOptions().dtype(torch::kFloat32).device(o.device);

  model.set_step(step_index);
  set_learning_rate(optimizer, o.lr);
  optimizer.zero_grad(/*set_to_none=*/true);

  TrainStepResult r;
  r.lm_loss = torch::zeros({}, fopts);
  const double inv_a = 1.0 / static_cast<double>(A);
  for (int64_t micro = 0; micro < A; ++micro) {
    torch::Tensor batch = source.next_batch(B * W);
    TORCH_CHECK(batch.dim() == 2 && batch.size(0) == B * W && batch.size(1) >= 2, "batch source returned ",
                batch.sizes(), ", expected (", B * W, ", seq_len+1)");
    // Data parallel: every rank draws the same global batch and keeps its rows, so W processes
    // see exactly the windows one process with batch W·B would.
    if (W > 1) batch = batch.narrow(0, dist.rank() * B, B);
    batch = batch.to(o.device, /*non_blocking=*/true);
    const int64_t t = std::min<int64_t>(o.seq_len, batch.size(1) - 1);
    const torch::Tensor inputs_BT = batch.narrow(1, 0, t);
    const torch::Tensor targets_BT = batch.narrow(1, 1, t);

    // Global token index of this rank's first token: rows r·B.. of the global batch of W·B.
    model.set_noise_key(RouterNoiseKey{o.seed, step_index * A + micro, /*layer=*/0, dist.rank() * B * t});

    DecoderOutput out;
    {
      AutocastScope autocast(o.bf16);
      out = model.forward(inputs_BT);
    }
    const int64_t V = out.logits_BTV.size(-1);
    const torch::Tensor lm = torch::nn::functional::cross_entropy(out.logits_BTV.to(torch::kFloat32).reshape({-1, V}),
                                                                  targets_BT.reshape({-1}));
    torch::Tensor total = lm;
    for (const auto& [name, value] : out.aux_losses) total = total + value.to(torch::kFloat32);
    if (o.grad_norm_terms && micro == 0) {
      // NOTE: one extra backward per term, through the same graph (retained), before the step's own.
      const std::vector<ParameterGroup> groups = parameter_groups(model.module());
      r.grad_norm_terms.emplace("lm_loss", term_grad_norms(lm, groups, fopts));
      for (const auto& [name, value] : out.aux_losses) {
        if (value.requires_grad()) r.grad_norm_terms.emplace(name, term_grad_norms(value.to(torch::kFloat32), groups, fopts));
      }
    }
    (A > 1 ? total / static_cast<double>(A) : total).backward();

    torch::NoGradGuard no_grad;
    r.lm_loss += lm.detach() * inv_a;
    for (const auto& [name, value] : out.aux_losses) {
      const torch::Tensor v = value.detach().to(torch::kFloat32) * inv_a;
      auto it = r.aux_losses.find(name);
      if (it == r.aux_losses.end()) r.aux_losses.emplace(name, v);
      else it->second = it->second + v;
    }
    const int64_t L = static_cast<int64_t>(out.layers.size());
    if (micro == 0) {
      r.active_experts_L = torch::zeros({L}, fopts);
      r.dropped_L = torch::zeros({L}, fopts);
      r.tokens_per_expert_L.resize(static_cast<size_t>(L));
      r.router_metrics_L.resize(static_cast<size_t>(L));
    }
    TORCH_CHECK(L == r.active_experts_L.size(0), "model returned ", L, " layer metrics, then ",
                r.active_experts_L.size(0));
    for (int64_t l = 0; l < L; ++l) {
      const LayerRoutingMetrics& m = out.layers[static_cast<size_t>(l)];
      if (m.active_experts.defined()) r.active_experts_L[l] += m.active_experts.detach().to(torch::kFloat32).reshape({}) * inv_a;
      if (m.dropped_tokens.defined()) r.dropped_L[l] += m.dropped_tokens.detach().to(torch::kFloat32).reshape({});
      if (m.tokens_per_expert_E.defined()) {
        const torch::Tensor tpe = m.tokens_per_expert_E.detach().to(torch::kFloat32);
        auto& acc = r.tokens_per_expert_L[static_cast<size_t>(l)];
        acc = acc.defined() ? acc + tpe : tpe;
      }
      for (const auto& [name, value] : m.router_metrics) {
        const torch::Tensor v = value.detach().to(torch::kFloat32).reshape({}) * inv_a;
        auto& slot = r.router_metrics_L[static_cast<size_t>(l)];
        auto it = slot.find(name);
        if (it == slot.end()) slot.emplace(name, v);
        else it->second = it->second + v;
      }
    }
  }

  if (W > 1) reduce_routing_figures(r, dist);
  if (o.expert_parallel != nullptr) {
    o.expert_parallel->reduce_gradients(params);
    r.grad_norm = o.expert_parallel->clip_grad_norm(params, o.grad_clip);
  } else {
    dist.average_gradients(params);
    r.grad_norm = clip_grad_norm(params, o.grad_clip);
  }
  optimizer.step();
  if (W > 1) average_controller_measurements(model, dist);
  model.update_controllers();
  // Controllers (ReMoE's λ) follow rank 0 so that every replica routes with the same state.
  if (W > 1) dist.broadcast_buffers(model.module());
  return r;
}

}  // namespace dirmoe
