// CUDA kernels of the counter-based router noise: the host's per-element functions
// (router/counter_noise_element.h) run one element per thread. Before them, a CUDA draw was filled
// on the host and copied (bench/README.md, "The first GPU profile": DirMoE's step 3.03x Switch's on
// one H200, the host fill most of the difference).
#include "router_noise_cuda.h"

#include "cuda_per_row.cuh"

namespace dirmoe::cuda_noise {
namespace {

constexpr int kThreads = 256;

/// Thread blocks of kThreads for n threads.
unsigned int blocks_for(int64_t n) { return cuda_rows::blocks_for(n, kThreads, "router noise"); }

template <typename T>
__global__ void counter_uniform_kernel(CounterNoiseWords key, uint64_t token_offset, int64_t rows, int64_t cols,
                                       int64_t words, T* out) {
  const int64_t blocks_per_element = (words + 3) / 4;
  const int64_t i = static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x;  // (t, c, b) flattened
  if (i >= rows * cols * blocks_per_element) return;
  const int64_t b = i % blocks_per_element;
  const int64_t element = i / blocks_per_element;  // t * cols + c
  const int64_t c = element % cols, t = element / cols;
  uint32_t w[4];
  counter_noise_block(key, token_offset + static_cast<uint64_t>(t), static_cast<uint32_t>(c),
                      static_cast<uint32_t>(b), w);
  T* row = out + element * words;
  for (int lane = 0; lane < 4 && 4 * b + lane < words; ++lane) {
    row[4 * b + lane] = static_cast<T>(philox_word_uniform(w[lane]));
  }
}

template <typename T>
__global__ void counter_gamma_kernel(CounterNoiseWords key, uint64_t token_offset, int64_t T_rows, int64_t C,
                                     const T* alpha, T* sample, double floor) {
  const int64_t i = static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x;  // t * C + c
  if (i >= T_rows * C) return;
  const int64_t t = i / C, c = i % C;
  const double draw = counter_gamma_element(key, token_offset + static_cast<uint64_t>(t), static_cast<uint32_t>(c),
                                            static_cast<double>(alpha[i]));
  sample[i] = static_cast<T>(draw < floor ? floor : draw);  // clamped in float64, then rounded (as the CPU)
}

}  // namespace

void launch_counter_uniform(const CounterNoiseWords& key, uint64_t token_offset, int64_t rows, int64_t cols,
                            int64_t words, bool out_is_double, void* out, int device) {
  const int64_t n = rows * cols * ((words + 3) / 4);
  if (n == 0) return;
  const c10::cuda::CUDAGuard guard(static_cast<c10::DeviceIndex>(device));
  const cudaStream_t stream = cuda_rows::current_stream(device);
  if (out_is_double) {
    counter_uniform_kernel<double><<<blocks_for(n), kThreads, 0, stream>>>(key, token_offset, rows, cols, words,
                                                                           static_cast<double*>(out));
  } else {
    counter_uniform_kernel<float><<<blocks_for(n), kThreads, 0, stream>>>(key, token_offset, rows, cols, words,
                                                                          static_cast<float*>(out));
  }
  C10_CUDA_KERNEL_LAUNCH_CHECK();
}

void launch_counter_gamma(const CounterNoiseWords& key, uint64_t token_offset, int64_t T, int64_t C, bool is_double,
                          const void* alpha, void* sample, double floor, int device) {
  const int64_t n = T * C;
  if (n == 0) return;
  const c10::cuda::CUDAGuard guard(static_cast<c10::DeviceIndex>(device));
  const cudaStream_t stream = cuda_rows::current_stream(device);
  if (is_double) {
    counter_gamma_kernel<double><<<blocks_for(n), kThreads, 0, stream>>>(
        key, token_offset, T, C, static_cast<const double*>(alpha), static_cast<double*>(sample), floor);
  } else {
    counter_gamma_kernel<float><<<blocks_for(n), kThreads, 0, stream>>>(
        key, token_offset, T, C, static_cast<const float*>(alpha), static_cast<float*>(sample), floor);
  }
  C10_CUDA_KERNEL_LAUNCH_CHECK();
}

}  // namespace dirmoe::cuda_noise
