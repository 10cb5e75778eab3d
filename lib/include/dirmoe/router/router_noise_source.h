#pragma once
// Counter-based router noise (docs/parallel.md "Router noise"): every random number a router draws
// in training is a pure function of (seed, draw, layer, stream, global token index, column, word),
// computed with Philox4x32-10 (core/philox_rounds.h). A token's noise therefore does not depend on which
// process it is on or how many tokens share its forward, so 1, 2 or N processes train the same model,
// and a resumed run draws what the uninterrupted one would have drawn without any generator state.
//
// Counter layout of element (t, c), word w (block b = w / 4 of the Philox output, lane w mod 4):
//   c0 = low 32 bits of the global token index g = token_offset + t
//   c1 = c | b << 20 | stream << 28         (c < 2²⁰, b < 2⁸, stream < 2⁴)
//   c2 = draw                              (step·grad_accum + micro-batch, < 2³²)
//   c3 = layer | (g >> 32) << 16            (layer < 2¹⁶, g < 2⁴⁸)
//   key = (low, high) 32 bits of the seed
#include <cstdint>
#include <optional>

#include <torch/types.h>

#include "dirmoe/router/counter_noise_element.h"

namespace dirmoe {

/// One stream per kind of draw, so that two draws of one forward never share numbers.
enum class RouterNoiseStream : uint32_t {
  selection = 1,         // DirMoE's Logistic noise (through u), SparseMixer's first Gumbel-max draw
  second_selection = 2,  // SparseMixer's second choice (k = 2)
  scale = 3,             // SparseMixer's forward-scale draws u (T, k)
  gamma = 4,             // DirMoE's Gamma(α^q) draws
  jitter = 5,            // Top-k's multiplicative input jitter (T, D)
};

/// What a training forward's router noise is keyed by. The trainer sets seed, draw and token_offset
/// for each forward; the MoE layer adds its index.
struct RouterNoiseKey {
  uint64_t seed = 0;         // train.seed
  int64_t draw = 0;          // one number per training forward: step·grad_accum + micro-batch
  int64_t layer = 0;         // the MoE layer
  int64_t token_offset = 0;  // global index of this forward's first token (rank·B·T with data parallel)
};

/// Uniform draws in (0, 1) of shape (rows, cols, words) (words = 1: (rows, cols)): element
/// (t, c, w) belongs to global token token_offset + t. Values are odd multiples of 2⁻²⁴, the same in
/// every floating dtype of at least 24 significant bits (core/philox_rounds.h). Generated where the result
/// lives: on the host for the CPU, by a CUDA kernel for a CUDA device where the build has the CUDA
/// noise kernels (router_noise_cuda.cu), else on the host and copied from pinned memory without
/// waiting for the device.
torch::Tensor counter_uniform(const RouterNoiseKey& key, RouterNoiseStream stream, int64_t rows, int64_t cols,
                              int64_t words, const torch::TensorOptions& options);

/// Whether this build has the CUDA noise kernels (router_noise_cuda.cu; lib/CMakeLists.txt builds
/// them where LibTorch has CUDA and nvcc is found). Without them a CUDA draw is made on the host.
bool cuda_noise_kernels_built();


/// Gamma(α, 1) draws for alpha_TC (T, C), elementwise, from counter_uniform words: Marsaglia & Tsang
/// (2000) with a = α (α ≥ 1) or a = α + 1 (α < 1): d = a − 1/3, c = 1/√(9d); for candidates
/// j = 0..7, x_j ~ N(0, 1) (Box–Muller) and v_j = (1 + c·x_j)³, accepted when v_j > 0 and
/// log u_j < x_j²/2 + d − d·v_j + d·log v_j; the draw is d·v_j of the first accepted j, times
/// U^(1/α) when α < 1. Each candidate is accepted with probability ≥ 0.95 (a ≥ 1), so all eight
/// fail with probability < 10⁻¹⁰; the draw is then d. Computed in float64 on alpha's device,
/// returned in alpha's dtype, at least its smallest normal number (as at::_standard_gamma). Not
/// differentiable: gamma_reparam (dirichlet.h) carries the implicit gradient of the sample.
///
/// Implementations of the same arithmetic, chosen by alpha's device: on the CPU one pass over the
/// elements that generates a block of words only when a candidate reads it and stops at the first
/// accepted candidate (counter_gamma_elementwise; bench/README.md has the saving); on CUDA the same
/// per-element function (counter_noise_element.h), one thread per element, where the build has the
/// CUDA noise kernels; elsewhere tensor operations over all 2K+1 words (counter_gamma_tensor_ops).
/// The CPU paths agree with the Python reference (tests/reference/router_noise_reference.py) to
/// 1e-12 relative; the CUDA ones with the CPU's (tests/gpu/).
torch::Tensor counter_gamma(const RouterNoiseKey& key, RouterNoiseStream stream, const torch::Tensor& alpha_TC);

/// counter_gamma on the CPU, element by element (alpha on the CPU).
torch::Tensor counter_gamma_elementwise(const RouterNoiseKey& key, RouterNoiseStream stream,
                                        const torch::Tensor& alpha_TC);

/// counter_gamma as tensor operations on alpha's device (any device; CUDA's path in a build without
/// the CUDA noise kernels).
torch::Tensor counter_gamma_tensor_ops(const RouterNoiseKey& key, RouterNoiseStream stream,
                                       const torch::Tensor& alpha_TC);

/// Fresh U(0, 1) draws shaped like `like` (2-D): counter-based when `key` is given, else from
/// torch's default generator (a router used outside the trainer, e.g. in unit tests).
torch::Tensor fresh_uniform_like(const std::optional<RouterNoiseKey>& key, RouterNoiseStream stream,
                                 const torch::Tensor& like);
/// Fresh U(0, 1) draws of shape (rows, cols), as fresh_uniform_like.
torch::Tensor fresh_uniform(const std::optional<RouterNoiseKey>& key, RouterNoiseStream stream, int64_t rows,
                            int64_t cols, const torch::TensorOptions& options);
/// The Gamma draws a router uses for alpha_TC: `given` when defined (tests pass draws), else
/// counter_gamma when `key` is given, else undefined (gamma_reparam then samples from torch's
/// generator).
torch::Tensor gamma_draws(const torch::Tensor& given, const std::optional<RouterNoiseKey>& key,
                          RouterNoiseStream stream, const torch::Tensor& alpha_TC);

}  // namespace dirmoe
