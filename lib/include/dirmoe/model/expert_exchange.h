#pragma once
// The processes of one expert-parallel group as an MoE layer sees them (docs/parallel.md): N
// processes, process r holding experts [r·E/N, (r+1)·E/N) of every layer, and an all-to-all that
// moves rows between them. The trainer implements it on c10d (train/expert_parallel.h); the layer
// and its dispatch (expert_parallel_dispatch.h) know nothing of process groups.
#include <cstdint>
#include <vector>

#include <torch/types.h>

namespace dirmoe {

class ExpertExchange {
 public:
  virtual ~ExpertExchange() = default;
  /// This process's index in the group, 0..size()−1.
  virtual int64_t rank() const = 0;
  /// N, the processes sharing one layer's experts.
  virtual int64_t size() const = 0;
  /// All-to-all of rows (dim 0). Rows [Σ_{q<p} input_splits[q], Σ_{q≤p} input_splits[q]) of `input` go
  /// to process p; the result holds the rows every process sent here, process 0's first, with
  /// output_splits[p] rows from process p. Both split lists have size() entries and every process
  /// must call this in the same order. Not differentiable: all_to_all_rows() adds the backward.
  virtual torch::Tensor all_to_all(const torch::Tensor& input, const std::vector<int64_t>& output_splits,
                                   const std::vector<int64_t>& input_splits) = 0;
};

}  // namespace dirmoe
