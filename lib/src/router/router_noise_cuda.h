#pragma once
// The CUDA kernels of the counter-based router noise (router_noise_cuda.cu), declared without any
// CUDA or LibTorch header so that router_noise_source.cpp, compiled by the host compiler, can call
// them. Built only where LibTorch has CUDA and nvcc is found (lib/CMakeLists.txt defines
// DIRMOE_CUDA_KERNELS then); each runs on the device's current stream.
#include <cstdint>

#include "dirmoe/router/counter_noise_element.h"

namespace dirmoe::cuda_noise {

/// out (rows, cols, words), contiguous, float32 (out_is_double false) or float64, on CUDA device
/// `device`: word w of element (t, c) is philox_word_uniform of word w mod 4 of
/// counter_noise_block(key, token_offset + t, c, w / 4). One thread per block of four words.
void launch_counter_uniform(const CounterNoiseWords& key, uint64_t token_offset, int64_t rows, int64_t cols,
                            int64_t words, bool out_is_double, void* out, int device);

/// sample (T, C) = max(counter_gamma_element(key, token_offset + t, c, alpha[t, c]), floor), rounded
/// to alpha's dtype (float32, or float64 when is_double); alpha and sample contiguous on `device`.
/// One thread per element.
void launch_counter_gamma(const CounterNoiseWords& key, uint64_t token_offset, int64_t T, int64_t C, bool is_double,
                          const void* alpha, void* sample, double floor, int device);

}  // namespace dirmoe::cuda_noise
