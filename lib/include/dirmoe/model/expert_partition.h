#pragma once
// How the fused CPU experts (SwigluExpertsImpl::forward_fused) share their GEMMs among threads,
// one part per thread, each part's GEMMs single-threaded:
//   rows:    the N rows, sorted by expert (counts[e] rows for expert e, in expert order), are cut
//            into `parts` ranges of equal row count, each split at expert boundaries
//            (activations and input gradients: a row block of the output per block);
//   columns: the output columns of the E weight gradients are cut so that each part gets an
//            equal share of the work Σ_e counts[e]·n_cols (a weight gradient's reduction over its
//            expert's rows stays inside one GEMM, so no two parts write the same element).
// NOTE: one GEMM per block on one thread each, instead of every expert's GEMM spread over all
// threads in turn: the per-expert GEMMs are small (N/E rows). Measured at d512 (8 experts × 256
// rows, [256 × 512]·[512 × 2048], 2 threads, LibTorch's MKL): 176–178 GFLOP/s as two parts against
// 164–174 for the experts one after another on both threads; the layer moved more, since the
// weight gradients' column blocks were split again by the BLAS (bench/README.md, "dirmoe's
// parallel loops ran on one thread"). The blocks of all parts are disjoint and cover every row
// (column) of every expert with rows exactly once.
#include <cstdint>
#include <vector>

namespace dirmoe {

/// Rows (or columns) [first, first + count) of expert `expert`; rows are absolute (0..N−1).
struct ExpertBlock {
  int64_t expert = 0;
  int64_t first = 0;
  int64_t count = 0;
};

/// Part p: the rows [round(p·N/parts), round((p+1)·N/parts)), split at expert boundaries.
std::vector<std::vector<ExpertBlock>> split_expert_rows(const std::vector<int64_t>& counts, int64_t parts);

/// Part p: the columns of each expert e (with counts[e] > 0) whose work, counted counts[e] per
/// column in expert order, falls in the p-th equal share of the total.
std::vector<std::vector<ExpertBlock>> split_expert_columns(const std::vector<int64_t>& counts, int64_t n_cols,
                                                           int64_t parts);

}  // namespace dirmoe
