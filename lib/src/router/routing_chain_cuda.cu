// CUDA kernels of DirMoE's routing chain: the host's per-token passes (router/routing_chain_element.h)
// run one token per thread. Written as tensor operators instead, the same chain launched about 20
// kernels forward and 25 backward per path on [T, E] tensors of a few microseconds each
// (bench/README.md, "The GPU figures": about 270 more operator calls per layer than top-k's).
#include "routing_chain_cuda.h"

#include "cuda_per_row.cuh"

namespace dirmoe::cuda_chain {
namespace {

/// The backward of both paths for one token: the LM path's (where wanted) and the sum's, over the
/// sum's rows.
template <typename T>
struct BackwardPair {
  chain_element::ChainBackward<T> sum, lm;
  bool with_lm;
  int64_t rows;

  BackwardPair(const chain_element::ChainBackward<T>& sum_pass, const chain_element::ChainBackward<T>* lm_pass)
      : sum(sum_pass), lm(lm_pass != nullptr ? *lm_pass : sum_pass), with_lm(lm_pass != nullptr), rows(sum_pass.rows) {}
  DIRMOE_HOST_DEVICE void run(int64_t row) const {
    if (with_lm) lm.run(row);
    sum.run(row);
  }
};

template <typename T>
void launch_backward_pair(const chain_element::ChainBackward<T>& sum, const chain_element::ChainBackward<T>* lm,
                          int device) {
  cuda_rows::launch_per_row(BackwardPair<T>(sum, lm), device, "routing chain backward");
}

}  // namespace

void launch(const chain_element::ChainBeforeDraw<float>& pass, int device) {
  cuda_rows::launch_per_row(pass, device, "routing chain");
}
void launch(const chain_element::ChainBeforeDraw<double>& pass, int device) {
  cuda_rows::launch_per_row(pass, device, "routing chain");
}
void launch(const chain_element::ChainAfterDraw<float>& pass, int device) {
  cuda_rows::launch_per_row(pass, device, "routing chain");
}
void launch(const chain_element::ChainAfterDraw<double>& pass, int device) {
  cuda_rows::launch_per_row(pass, device, "routing chain");
}
void launch_backward(const chain_element::ChainBackward<float>& sum, const chain_element::ChainBackward<float>* lm,
                     int device) {
  launch_backward_pair(sum, lm, device);
}
void launch_backward(const chain_element::ChainBackward<double>& sum, const chain_element::ChainBackward<double>* lm,
                     int device) {
  launch_backward_pair(sum, lm, device);
}

}  // namespace dirmoe::cuda_chain
