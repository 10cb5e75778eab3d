#pragma once
// The RoutingStatsSink the MoE layers report to during analysis and training (DESIGN.md "Routing
// statistics"). Accumulators live on the device of the first tensors recorded; record() only
// queues device ops (no host synchronisation), snapshot() copies to the host when asked.
#include <cstdint>
#include <vector>

#include <torch/types.h>

#include "dirmoe/stats/routing_stats_sink.h"
#include "dirmoe/stats/routing_stats_snapshot.h"

namespace dirmoe {

struct RoutingStatsOptions {
  int64_t n_layers = 0;
  int64_t n_experts = 0;
  int64_t n_domains = 0;          // 0: no domain figures (training time series)
  int64_t simpson_bins = 50;      // token Simpson histogram bins over [0, 1]
  int64_t trace_stride = 0;       // keep every N-th token of each forward in the trace; 0: no trace
  int64_t trace_max_tokens = 0;   // stop tracing after this many tokens; 0: no limit
};

/// Per-layer counters of routing decisions: tokens and weight per expert, active-expert histogram,
/// weight by domain and expert, expert co-activation, token Simpson histogram (LayerRoutingStats
/// defines each). Tokens are the rows of the (T, E) tensors the layers pass, in the order the
/// decoder flattens its (B, T) batch (row-major), which is the order of `set_domains`.
class RoutingStatsAccumulator : public RoutingStatsSink {
 public:
  explicit RoutingStatsAccumulator(RoutingStatsOptions options);

  /// Domain labels (and optionally token ids, for the trace) of the tokens of the next forward:
  /// domain_ids_T (T) integer in [0, n_domains). Holds until the next call or clear_domains().
  void set_domains(const torch::Tensor& domain_ids_T, const torch::Tensor& token_ids_T = {});
  void clear_domains();

  void record(int64_t layer, const torch::Tensor& dispatch_mask_TE, const torch::Tensor& weights_TE) override;

  /// Copies every accumulator to the host (one synchronisation).
  RoutingStatsSnapshot snapshot() const;
  /// Zeroes the counters (and drops the trace), keeping the device.
  void reset();

  const RoutingStatsOptions& options() const { return options_; }

 private:
  struct Layer {
    int64_t n_tokens = 0;                  // host count, known from shapes
    torch::Tensor tokens_per_expert_E;     // (E) int64
    torch::Tensor weight_per_expert_E;     // (E) float64
    torch::Tensor active_hist_K;           // (E+1) int64
    torch::Tensor domain_expert_DE;        // (Dn, E) float64
    torch::Tensor coactivation_EE;         // (E, E) int64
    torch::Tensor simpson_hist_B;          // (bins) int64
    torch::Tensor simpson_sum;             // () float64
    torch::Tensor simpson_count;           // () int64
    std::vector<torch::Tensor> trace_mask_NE;     // per forward: (n, E) bool
    std::vector<torch::Tensor> trace_weights_NE;  // per forward: (n, E) float32
  };
  void allocate(const torch::Device& device);

  RoutingStatsOptions options_;
  std::vector<Layer> layers_;
  bool allocated_ = false;
  torch::Device device_ = torch::kCPU;
  torch::Tensor domain_ids_T_;              // (T) int64 of the current forward, or undefined
  torch::Tensor trace_index_N_;             // (n) token rows traced in the current forward
  std::vector<torch::Tensor> trace_tokens_; // per forward: (n) int64 token ids
  std::vector<torch::Tensor> trace_domains_;// per forward: (n) int64 domain ids
  int64_t traced_tokens_ = 0;
};

}  // namespace dirmoe
