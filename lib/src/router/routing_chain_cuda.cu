// CUDA kernels of DirMoE's routing chain: the host's per-token passes (router/routing_chain_element.h)
// run one token per thread. Written as tensor operators instead, the same chain launched about 20
// kernels forward and 25 backward per path on [T, E] tensors of a few microseconds each
// (bench/README.md, "The GPU figures": about 270 more operator calls per layer than top-k's).
#include "routing_chain_cuda.h"

#include "cuda_per_row.cuh"

namespace dirmoe::cuda_chain {
namespace {

/// The backward of both paths for one token: the LM path's (where wanted) and the sum's.
template <typename T>
struct BackwardPair {
  chain_element::ChainBackward<T> sum, lm;
  bool with_lm = false;
  int64_t rows = 0;

  DIRMOE_HOST_DEVICE void run(int64_t row) const {
    if (with_lm) lm.run(row);
    sum.run(row);
  }
};

template <typename T>
void launch_backward_pair(const chain_element::ChainBackward<T>& sum, const chain_element::ChainBackward<T>* lm,
                          int device) {
  BackwardPair<T> pair;
  pair.sum = sum;
  pair.lm = lm != nullptr ? *lm : sum;
  pair.with_lm = lm != nullptr;
  pair.rows = sum.rows;
  cuda_rows::launch_per_row(pair, device, "routing chain backward");
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
