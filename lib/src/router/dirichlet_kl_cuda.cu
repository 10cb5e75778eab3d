// CUDA kernels of the Dirichlet KL node: the host's rows (router/dirichlet_kl_element.h), one row per
// thread. As operators, the KL's forward launched four lgamma, two digamma and some ten arithmetic
// kernels, and autograd's backward about twenty more, each on a [T, E] tensor of a few microseconds.
#include "dirichlet_kl_cuda.h"

#include <c10/cuda/CUDAException.h>
#include <c10/cuda/CUDAGuard.h>
#include <c10/cuda/CUDAStream.h>

#include "dirmoe/router/special_functions.h"

namespace dirmoe::cuda_kl {
namespace {

/// 128 threads per block, as routing_chain_cuda.cu: more blocks than SMs at the recipes' token counts.
constexpr int kThreads = 128;

/// ψ and ψ′ of special_functions.h, lnΓ of CUDA's math library.
struct DeviceSpecialFunctions {
  DIRMOE_HOST_DEVICE static float digamma(float x) { return special::digamma(x); }
  DIRMOE_HOST_DEVICE static double digamma(double x) { return special::digamma(x); }
  DIRMOE_HOST_DEVICE static float trigamma(float x) { return special::trigamma(x); }
  DIRMOE_HOST_DEVICE static double trigamma(double x) { return special::trigamma(x); }
  DIRMOE_HOST_DEVICE static float log_gamma(float x) { return lgammaf(x); }
  DIRMOE_HOST_DEVICE static double log_gamma(double x) { return lgamma(x); }
};

/// pass.run(row) for every row (the pass structs are passed by value: pointers and sizes)
template <typename Pass>
__global__ void per_row_kernel(Pass pass) {
  const int64_t row = static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x;
  if (row < pass.rows) pass.template run<DeviceSpecialFunctions>(row);
}

template <typename Pass>
void launch_rows(const Pass& pass, int device) {
  if (pass.rows == 0) return;
  const int64_t blocks = (pass.rows + kThreads - 1) / kThreads;
  TORCH_CHECK(blocks <= int64_t{2147483647}, "dirichlet_kl: ", pass.rows, " rows exceed one CUDA grid");
  const c10::cuda::CUDAGuard guard(static_cast<c10::DeviceIndex>(device));
  const cudaStream_t stream = c10::cuda::getCurrentCUDAStream(static_cast<c10::DeviceIndex>(device)).stream();
  per_row_kernel<<<static_cast<unsigned int>(blocks), kThreads, 0, stream>>>(pass);
  C10_CUDA_KERNEL_LAUNCH_CHECK();
}

}  // namespace

void launch(const kl_element::DirichletKlForward<float>& pass, int device) { launch_rows(pass, device); }
void launch(const kl_element::DirichletKlForward<double>& pass, int device) { launch_rows(pass, device); }
void launch(const kl_element::DirichletKlBackward<float>& pass, int device) { launch_rows(pass, device); }
void launch(const kl_element::DirichletKlBackward<double>& pass, int device) { launch_rows(pass, device); }

}  // namespace dirmoe::cuda_kl
