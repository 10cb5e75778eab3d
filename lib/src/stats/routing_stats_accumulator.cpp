#include "dirmoe/stats/routing_stats_accumulator.h"

#include <algorithm>
#include <limits>

#include <torch/torch.h>

#include "dirmoe/core/error.h"

namespace dirmoe {

RoutingStatsAccumulator::RoutingStatsAccumulator(RoutingStatsOptions options) : options_(options) {
  TORCH_CHECK(options_.n_layers > 0, "RoutingStatsAccumulator: n_layers must be > 0");
  TORCH_CHECK(options_.n_experts > 0, "RoutingStatsAccumulator: n_experts must be > 0");
  TORCH_CHECK(options_.n_domains >= 0, "RoutingStatsAccumulator: n_domains must be >= 0");
  TORCH_CHECK(options_.simpson_bins > 0, "RoutingStatsAccumulator: simpson_bins must be > 0");
  TORCH_CHECK(options_.trace_stride >= 0 && options_.trace_max_tokens >= 0,
              "RoutingStatsAccumulator: trace_stride and trace_max_tokens must be >= 0");
  layers_.resize(static_cast<size_t>(options_.n_layers));
}

void RoutingStatsAccumulator::allocate(const torch::Device& device) {
  device_ = device;
  const int64_t E = options_.n_experts;
  const auto i64 = torch::TensorOptions().dtype(torch::kInt64).device(device);
  const auto f64 = torch::TensorOptions().dtype(torch::kFloat64).device(device);
  for (auto& l : layers_) {
    l.n_tokens = 0;
    l.tokens_per_expert_E = torch::zeros({E}, i64);
    l.weight_per_expert_E = torch::zeros({E}, f64);
    l.active_hist_K = torch::zeros({E + 1}, i64);
    l.domain_expert_DE = torch::zeros({options_.n_domains, E}, f64);
    l.coactivation_EE = torch::zeros({E, E}, i64);
    l.simpson_hist_B = torch::zeros({options_.simpson_bins}, i64);
    l.simpson_sum = torch::zeros({}, f64);
    l.simpson_count = torch::zeros({}, i64);
    l.trace_mask_NE.clear();
    l.trace_weights_NE.clear();
  }
  allocated_ = true;
}

void RoutingStatsAccumulator::reset() {
  if (allocated_) allocate(device_);
  // The forward in progress (if any) is not traced any further: its rows were dropped above.
  trace_tokens_.clear();
  trace_domains_.clear();
  trace_index_N_ = torch::Tensor();
  traced_tokens_ = 0;
}

void RoutingStatsAccumulator::set_domains(const torch::Tensor& domain_ids_T, const torch::Tensor& token_ids_T) {
  TORCH_CHECK(domain_ids_T.defined() && domain_ids_T.dim() == 1, "set_domains: domain_ids_T must be 1-D");
  TORCH_CHECK(options_.n_domains > 0, "set_domains: the accumulator was built with n_domains = 0");
  TORCH_CHECK(!token_ids_T.defined() || token_ids_T.sizes() == domain_ids_T.sizes(),
              "set_domains: token_ids_T must have the shape of domain_ids_T");
  domain_ids_T_ = domain_ids_T.to(torch::kInt64);
  trace_index_N_ = torch::Tensor();
  if (options_.trace_stride > 0) {
    const int64_t T = domain_ids_T.size(0);
    int64_t n = (T + options_.trace_stride - 1) / options_.trace_stride;
    if (options_.trace_max_tokens > 0) n = std::min(n, options_.trace_max_tokens - traced_tokens_);
    if (n > 0) {
      trace_index_N_ = torch::arange(0, n * options_.trace_stride, options_.trace_stride,
                                     torch::TensorOptions().dtype(torch::kInt64).device(domain_ids_T.device()));
      trace_domains_.push_back(domain_ids_T_.index_select(0, trace_index_N_));
      trace_tokens_.push_back(token_ids_T.defined() ? token_ids_T.to(torch::kInt64).index_select(0, trace_index_N_)
                                                    : torch::full_like(trace_index_N_, -1));
      traced_tokens_ += n;
    }
  }
}

void RoutingStatsAccumulator::clear_domains() {
  domain_ids_T_ = torch::Tensor();
  trace_index_N_ = torch::Tensor();
}

void RoutingStatsAccumulator::record(int64_t layer, const torch::Tensor& dispatch_mask_TE,
                                     const torch::Tensor& weights_TE) {
  torch::NoGradGuard no_grad;
  const int64_t E = options_.n_experts;
  TORCH_CHECK(layer >= 0 && layer < options_.n_layers, "record: layer ", layer, " outside [0, ",
              options_.n_layers, ")");
  TORCH_CHECK(dispatch_mask_TE.dim() == 2 && dispatch_mask_TE.size(1) == E, "record: dispatch_mask_TE must be (T, ",
              E, "), got ", dispatch_mask_TE.sizes());
  TORCH_CHECK(weights_TE.sizes() == dispatch_mask_TE.sizes(), "record: weights_TE ", weights_TE.sizes(),
              " must match dispatch_mask_TE ", dispatch_mask_TE.sizes());
  if (!allocated_) allocate(dispatch_mask_TE.device());
  TORCH_CHECK(dispatch_mask_TE.device() == device_, "record: tensors on ", dispatch_mask_TE.device(),
              " but the accumulators live on ", device_);
  const int64_t T = dispatch_mask_TE.size(0);
  auto& l = layers_[static_cast<size_t>(layer)];

  const auto mask_TE = dispatch_mask_TE.to(torch::kBool);
  const auto masked_TE = weights_TE.detach().to(torch::kFloat64).masked_fill(mask_TE.logical_not(), 0.0);
  const auto k_T = mask_TE.sum(1, /*keepdim=*/false, torch::kInt64);

  l.n_tokens += T;
  l.tokens_per_expert_E.add_(mask_TE.sum(0, /*keepdim=*/false, torch::kInt64));
  l.weight_per_expert_E.add_(masked_TE.sum(0));
  // NOTE: index_add_ rather than bincount: bincount on CUDA reads the maximum back to the host.
  l.active_hist_K.index_add_(0, k_T, torch::ones_like(k_T));
  // Per-batch co-activation counts are at most T < 2^24, exact in float32 matmul.
  const auto mask_f_TE = mask_TE.to(torch::kFloat32);
  l.coactivation_EE.add_(mask_f_TE.t().mm(mask_f_TE).round().to(torch::kInt64));

  const auto total_T = masked_TE.sum(1);
  const auto valid_T = total_T > 0;
  const auto r_TE = masked_TE / total_T.clamp_min(std::numeric_limits<double>::min()).unsqueeze(1);
  const auto simpson_T = (r_TE * r_TE).sum(1);
  const auto bin_T = (simpson_T * static_cast<double>(options_.simpson_bins))
                         .floor()
                         .clamp(0, static_cast<double>(options_.simpson_bins - 1))
                         .to(torch::kInt64);
  l.simpson_hist_B.index_add_(0, bin_T, valid_T.to(torch::kInt64));
  l.simpson_sum.add_(simpson_T.masked_fill(valid_T.logical_not(), 0.0).sum());
  l.simpson_count.add_(valid_T.sum(torch::kInt64));

  if (domain_ids_T_.defined()) {
    TORCH_CHECK(domain_ids_T_.size(0) == T, "record: set_domains gave ", domain_ids_T_.size(0),
                " domain ids but layer ", layer, " routed ", T, " tokens");
    l.domain_expert_DE.index_add_(0, domain_ids_T_.to(device_), r_TE);
  }
  if (trace_index_N_.defined()) {
    const auto index_N = trace_index_N_.to(device_);
    l.trace_mask_NE.push_back(mask_TE.index_select(0, index_N));
    l.trace_weights_NE.push_back(masked_TE.index_select(0, index_N).to(torch::kFloat32));
  }
}

namespace {
template <typename T>
std::vector<T> to_vector(const torch::Tensor& t) {
  const auto c = t.contiguous();
  return std::vector<T>(c.data_ptr<T>(), c.data_ptr<T>() + c.numel());
}
}  // namespace

RoutingStatsSnapshot RoutingStatsAccumulator::snapshot() const {
  RoutingStatsSnapshot snap;
  snap.n_experts = options_.n_experts;
  snap.n_domains = options_.n_domains;
  snap.simpson_bins = options_.simpson_bins;
  const int64_t E = options_.n_experts;
  for (const auto& l : layers_) {
    LayerRoutingStats out;
    if (!allocated_) {
      out.tokens_per_expert.assign(E, 0);
      out.weight_per_expert.assign(E, 0.0);
      out.active_experts_hist.assign(E + 1, 0);
      out.domain_expert_tokens.assign(options_.n_domains * E, 0.0);
      out.expert_coactivation.assign(E * E, 0);
      out.token_simpson_hist.assign(options_.simpson_bins, 0);
      snap.layers.push_back(std::move(out));
      continue;
    }
    out.n_tokens = l.n_tokens;
    out.tokens_per_expert = to_vector<int64_t>(l.tokens_per_expert_E.cpu());
    out.weight_per_expert = to_vector<double>(l.weight_per_expert_E.cpu());
    out.active_experts_hist = to_vector<int64_t>(l.active_hist_K.cpu());
    out.domain_expert_tokens = to_vector<double>(l.domain_expert_DE.cpu());
    out.expert_coactivation = to_vector<int64_t>(l.coactivation_EE.cpu());
    out.token_simpson_hist = to_vector<int64_t>(l.simpson_hist_B.cpu());
    out.token_simpson_sum = l.simpson_sum.item<double>();
    out.token_simpson_count = l.simpson_count.item<int64_t>();
    snap.layers.push_back(std::move(out));
  }
  if (options_.trace_stride > 0 && allocated_) {
    const size_t n_forwards = trace_tokens_.size();
    for (size_t i = 0; i < layers_.size(); ++i) {
      TORCH_CHECK(layers_[i].trace_mask_NE.size() == n_forwards, "snapshot: layer ", i, " recorded ",
                  layers_[i].trace_mask_NE.size(), " traced forwards, set_domains was called ", n_forwards,
                  " times; every layer must record once per forward");
    }
    RoutingTrace trace;
    if (n_forwards > 0) {
      const auto tokens_N = torch::cat(trace_tokens_).cpu();
      const auto domains_N = torch::cat(trace_domains_).cpu();
      std::vector<torch::Tensor> masks_LNE, weights_LNE;
      for (const auto& l : layers_) {
        masks_LNE.push_back(torch::cat(l.trace_mask_NE).cpu());
        weights_LNE.push_back(torch::cat(l.trace_weights_NE).cpu());
      }
      const auto mask_LNE = torch::stack(masks_LNE);
      const auto weight_LNE = torch::stack(weights_LNE);
      const int64_t K = std::max<int64_t>(1, mask_LNE.sum(2).max().item<int64_t>());
      // Dispatched experts first, by descending weight; the rest padded with -1 / 0.
      const auto key_LNE = weight_LNE.masked_fill(mask_LNE.logical_not(), -1.0f);
      const auto sorted = key_LNE.sort(/*dim=*/2, /*descending=*/true);
      const auto top_LNK = std::get<1>(sorted).narrow(2, 0, K);
      const auto keep_LNK = mask_LNE.gather(2, top_LNK);
      const auto ids_LNK = top_LNK.masked_fill(keep_LNK.logical_not(), -1).to(torch::kInt16);
      const auto w_LNK = weight_LNE.gather(2, top_LNK).masked_fill(keep_LNK.logical_not(), 0.0f);
      trace.max_active = K;
      trace.token_ids = to_vector<int64_t>(tokens_N);
      trace.domain_ids = to_vector<int32_t>(domains_N.to(torch::kInt32));
      trace.expert_ids = to_vector<int16_t>(ids_LNK);
      trace.weights = to_vector<float>(w_LNK);
    }
    snap.trace = std::move(trace);
  }
  return snap;
}

}  // namespace dirmoe
