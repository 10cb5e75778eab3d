#pragma once
// Launching dirmoe's CUDA kernels: the grid for n threads, the device's current stream, and the one
// kernel shape of the element passes, one thread per row of a pass struct (routing_chain_element.h,
// dirichlet_kl_element.h) running the same run(row) the CPU loops call. Included by the .cu files only
// (router_noise_cuda.cu, routing_chain_cuda.cu, dirichlet_kl_cuda.cu).
#include <cstdint>

#include <c10/cuda/CUDAException.h>
#include <c10/cuda/CUDAGuard.h>
#include <c10/cuda/CUDAStream.h>

namespace dirmoe::cuda_rows {

/// Blocks of `threads` for n threads; a grid has at most 2^31 − 1 blocks in x. `what` names the caller
/// in the message.
inline unsigned int blocks_for(int64_t n, int threads, const char* what) {
  const int64_t blocks = (n + threads - 1) / threads;
  TORCH_CHECK(blocks <= int64_t{2147483647}, what, ": ", n, " CUDA threads exceed one grid");
  return static_cast<unsigned int>(blocks);
}

/// The current stream of CUDA device `device` (the caller's, as LibTorch's own kernels use it).
inline cudaStream_t current_stream(int device) {
  return c10::cuda::getCurrentCUDAStream(static_cast<c10::DeviceIndex>(device)).stream();
}

/// 128 threads per block for the per-row passes: the 185M recipe's 32,768 tokens per layer make 256
/// blocks, about two per SM of an H100 (with 256 threads, one); each thread's work is a row of E.
constexpr int kRowThreads = 128;

/// pass.run(row) for every row of `pass` (a struct of pointers and sizes, passed by value).
template <typename Pass>
__global__ void per_row_kernel(Pass pass) {
  const int64_t row = static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x;
  if (row < pass.rows) pass.run(row);
}

/// per_row_kernel over pass.rows rows on `device`'s current stream; `what` names the caller.
template <typename Pass>
void launch_per_row(const Pass& pass, int device, const char* what) {
  if (pass.rows == 0) return;
  const c10::cuda::CUDAGuard guard(static_cast<c10::DeviceIndex>(device));
  per_row_kernel<<<blocks_for(pass.rows, kRowThreads, what), kRowThreads, 0, current_stream(device)>>>(pass);
  C10_CUDA_KERNEL_LAUNCH_CHECK();
}

}  // namespace dirmoe::cuda_rows
