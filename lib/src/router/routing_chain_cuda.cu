// CUDA kernels of DirMoE's routing chain: the host's per-token passes (router/routing_chain_element.h)
// run one token per thread. Written as tensor operators instead, the same chain launched about 20
// kernels forward and 25 backward per path on [T, E] tensors of a few microseconds each
// (bench/README.md, "The GPU figures": about 270 more operator calls per layer than top-k's).
#include "routing_chain_cuda.h"

#include <c10/cuda/CUDAException.h>
#include <c10/cuda/CUDAGuard.h>
#include <c10/cuda/CUDAStream.h>

namespace dirmoe::cuda_chain {
namespace {

/// 128 threads per block: the 185M recipe's 32,768 tokens per layer make 256 blocks, about two per SM
/// of an H100 (with 256 threads, one); each thread's work is a row of E experts.
constexpr int kThreads = 128;

/// Thread blocks for one thread per token; a grid has at most 2^31 − 1 blocks in x.
unsigned int blocks_for(int64_t rows) {
  const int64_t blocks = (rows + kThreads - 1) / kThreads;
  TORCH_CHECK(blocks <= int64_t{2147483647}, "routing chain: ", rows, " tokens exceed one CUDA grid");
  return static_cast<unsigned int>(blocks);
}

cudaStream_t stream_of(int device) {
  return c10::cuda::getCurrentCUDAStream(static_cast<c10::DeviceIndex>(device)).stream();
}

/// pass.run(token) for every token (the pass structs are passed by value: pointers and scalars)
template <typename Pass>
__global__ void per_token_kernel(Pass pass) {
  const int64_t row = static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x;
  if (row < pass.rows) pass.run(row);
}

template <typename T>
__global__ void backward_kernel(chain_element::ChainBackward<T> sum, chain_element::ChainBackward<T> lm, bool with_lm) {
  const int64_t row = static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x;
  if (row >= sum.rows) return;
  if (with_lm) lm.run(row);
  sum.run(row);
}

template <typename Pass>
void launch_per_token(const Pass& pass, int device) {
  if (pass.rows == 0) return;
  const c10::cuda::CUDAGuard guard(static_cast<c10::DeviceIndex>(device));
  per_token_kernel<<<blocks_for(pass.rows), kThreads, 0, stream_of(device)>>>(pass);
  C10_CUDA_KERNEL_LAUNCH_CHECK();
}

template <typename T>
void launch_backward_pair(const chain_element::ChainBackward<T>& sum, const chain_element::ChainBackward<T>* lm,
                          int device) {
  if (sum.rows == 0) return;
  const c10::cuda::CUDAGuard guard(static_cast<c10::DeviceIndex>(device));
  backward_kernel<T><<<blocks_for(sum.rows), kThreads, 0, stream_of(device)>>>(sum, lm != nullptr ? *lm : sum,
                                                                              lm != nullptr);
  C10_CUDA_KERNEL_LAUNCH_CHECK();
}

}  // namespace

void launch(const chain_element::ChainBeforeDraw<float>& pass, int device) { launch_per_token(pass, device); }
void launch(const chain_element::ChainBeforeDraw<double>& pass, int device) { launch_per_token(pass, device); }
void launch(const chain_element::ChainAfterDraw<float>& pass, int device) { launch_per_token(pass, device); }
void launch(const chain_element::ChainAfterDraw<double>& pass, int device) { launch_per_token(pass, device); }
void launch_backward(const chain_element::ChainBackward<float>& sum, const chain_element::ChainBackward<float>* lm,
                     int device) {
  launch_backward_pair(sum, lm, device);
}
void launch_backward(const chain_element::ChainBackward<double>& sum, const chain_element::ChainBackward<double>* lm,
                     int device) {
  launch_backward_pair(sum, lm, device);
}

}  // namespace dirmoe::cuda_chain
