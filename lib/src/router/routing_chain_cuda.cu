// CUDA kernels of DirMoE's routing chain: the host's per-token passes (router/routing_chain_element.h)
// run one token per thread. Written as tensor operators instead, the same chain launched about 20
// kernels forward and 25 backward per path on [T, E] tensors of a few microseconds each
// (bench/README.md, "The GPU figures": about 270 more operator calls per layer than top-k's).
#include "routing_chain_cuda.h"

#include "cuda_per_row.cuh"

namespace dirmoe::cuda_chain {

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
void launch(const chain_element::ChainBackwardPair<float>& pass, int device) {
  cuda_rows::launch_per_row(pass, device, "routing chain backward");
}
void launch(const chain_element::ChainBackwardPair<double>& pass, int device) {
  cuda_rows::launch_per_row(pass, device, "routing chain backward");
}

}  // namespace dirmoe::cuda_chain
