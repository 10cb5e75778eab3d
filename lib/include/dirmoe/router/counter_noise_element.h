#pragma once
// One element of the counter-based router noise (router_noise_source.h), written once for the host
// and for CUDA device code: the counter layout of element (token g, column c, block b) over the
// Philox4x32-10 rounds (core/philox_rounds.h), and counter_gamma's Marsaglia–Tsang draw
// of one element. The CPU paths (router_noise_source.cpp) and the CUDA kernels
// (router_noise_cuda.cu) call these same functions, so the two devices draw the same words and run
// the same double arithmetic in the same order.
//
// Plain C++ only: no std::array or std::max, which device code cannot call without nvcc's
// relaxed-constexpr mode.
#include <cfloat>
#include <cmath>
#include <cstdint>

#include "dirmoe/core/philox_rounds.h"

namespace dirmoe {

/// Candidate pairs of the Gamma draw: the first accepted one is the draw (router_noise_source.h).
constexpr int kGammaCandidateCount = 8;
/// Words per element of the Gamma draw: K normals (K/2 Box–Muller pairs, 2 words each), K
/// acceptance draws, one boost draw.
constexpr int kGammaWords = 2 * kGammaCandidateCount + 1;

/// The fields of a RouterNoiseKey and stream that every element's counter reads, as 32-bit words.
struct CounterNoiseWords {
  uint32_t key0 = 0, key1 = 0;  // low and high 32 bits of the seed
  uint32_t draw = 0;
  uint32_t layer = 0;
  uint32_t stream = 0;
};

/// The four words of block b of element (global token g, column c), in router_noise_source.h's
/// counter layout.
DIRMOE_HOST_DEVICE inline void counter_noise_block(const CounterNoiseWords& k, uint64_t g, uint32_t c, uint32_t b,
                                                   uint32_t out[4]) {
  out[0] = static_cast<uint32_t>(g);
  out[1] = c | b << 20 | k.stream << 28;
  out[2] = k.draw;
  out[3] = k.layer | static_cast<uint32_t>((g >> 32) & 0xffff) << 16;
  philox4x32_10_in_place(out, k.key0, k.key1);
}

/// Gamma(α, 1) of element (g, c) from its kGammaWords words (Marsaglia & Tsang 2000, as
/// router_noise_source.h's counter_gamma states): the candidates tried in order and each block of
/// four words generated only when a candidate first reads it, so that most elements generate blocks
/// 0, 1 and 2 (and 4 when α < 1) of the five. Not clamped (the caller floors it at its dtype's
/// smallest normal).
DIRMOE_HOST_DEVICE inline double counter_gamma_element(const CounterNoiseWords& k, uint64_t g, uint32_t c,
                                                       double alpha) {
  constexpr int K = kGammaCandidateCount;
  constexpr int kBlocks = (kGammaWords + 3) / 4;
  static_assert(K == 8 && kBlocks == 5, "the word layout assumes 8 candidates: 5 blocks of 4 words");
  uint32_t block[kBlocks][4];
  bool have[kBlocks] = {false, false, false, false, false};
  auto word = [&](int w) -> double {  // in a __host__ __device__ function, a lambda is one too
    const int b = w / 4;
    if (!have[b]) {
      counter_noise_block(k, g, c, static_cast<uint32_t>(b), block[b]);
      have[b] = true;
    }
    return philox_word_uniform(block[b][w % 4]);
  };
  const bool boosted = alpha < 1.0;
  const double a = boosted ? alpha + 1.0 : alpha;
  const double d = a - 1.0 / 3.0;
  const double cc = 1.0 / sqrt(9.0 * d);
  double draw = d;
  for (int j = 0; j < K; ++j) {
    const int pair = j % (K / 2);
    const double radius = sqrt(-2.0 * log(word(pair)));
    const double angle = (2.0 * 3.14159265358979323846) * word(K / 2 + pair);
    const double x = j < K / 2 ? radius * cos(angle) : radius * sin(angle);
    const double base = 1.0 + cc * x;
    const double v = base * base * base;
    const double log_v = log(v < DBL_MIN ? DBL_MIN : v)  /* std::max(v, DBL_MIN) */;
    if (v > 0 && log(word(K + j)) < 0.5 * (x * x) + d - d * v + d * log_v) {
      draw = d * v;
      break;
    }
  }
  if (boosted) draw *= exp(log(word(2 * K)) / alpha);
  return draw;
}

}  // namespace dirmoe
