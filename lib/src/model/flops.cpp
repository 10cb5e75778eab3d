#include "dirmoe/model/flops.h"

#include <torch/torch.h>

namespace dirmoe {

FlopsPerToken flops_per_token(const ModelConfig& model, const std::vector<double>& active_experts_per_layer,
                              double router_forward_flops_per_layer, int64_t seq_len) {
  TORCH_CHECK(static_cast<int64_t>(active_experts_per_layer.size()) == model.n_layers, "flops: need one E[k] per layer (",
              model.n_layers, "), got ", active_experts_per_layer.size());
  const double D = static_cast<double>(model.d_model);
  const double d_head = D / static_cast<double>(model.n_heads);
  const double q_width = static_cast<double>(model.n_heads) * d_head;
  const double kv_width = static_cast<double>(model.n_kv_heads) * d_head;
  const double S = static_cast<double>(seq_len > 0 ? seq_len : model.seq_len);
  const double L = static_cast<double>(model.n_layers);
  FlopsPerToken f;
  f.attention_projections = L * (2 * D * q_width + 2 * 2 * D * kv_width + 2 * q_width * D);
  f.attention_scores = L * (2 * 2 * q_width * S);
  for (double k : active_experts_per_layer) f.experts += k * 3 * 2 * D * static_cast<double>(model.d_ff);
  f.router = L * router_forward_flops_per_layer;
  f.head = 2 * D * static_cast<double>(model.vocab_size);
  return f;
}

double router_forward_flops(int64_t router_parameters_per_layer) {
  return 2.0 * static_cast<double>(router_parameters_per_layer);
}

}  // namespace dirmoe
