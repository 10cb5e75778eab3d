#pragma once
// Philox4x32-10 on plain words, callable from the host and from CUDA device code: core/philox.h's
// philox4x32_10 and the CUDA router-noise kernels (router/counter_noise_element.h) run these rounds.
#include <cstdint>

#if defined(__CUDACC__)
#define DIRMOE_HOST_DEVICE __host__ __device__
#else
#define DIRMOE_HOST_DEVICE
#endif

namespace dirmoe {

/// Philox4x32-10 (Salmon et al., SC 2011; Random123's constants) on c[4] in place, key (k0, k1):
/// ten rounds of (hi0, lo0) = mulhilo(0xD2511F53, c0), (hi1, lo1) = mulhilo(0xCD9E8D57, c2),
/// c ← (hi1 ⊕ c1 ⊕ k0, lo1, hi0 ⊕ c3 ⊕ k1, lo0), the key bumped by the Weyl constants between rounds.
DIRMOE_HOST_DEVICE inline void philox4x32_10_in_place(uint32_t c[4], uint32_t k0, uint32_t k1) {
  for (int round = 0; round < 10; ++round) {
    if (round > 0) {
      k0 += 0x9E3779B9u;
      k1 += 0xBB67AE85u;
    }
    const uint64_t p0 = static_cast<uint64_t>(0xD2511F53u) * c[0];
    const uint64_t p1 = static_cast<uint64_t>(0xCD9E8D57u) * c[2];
    const uint32_t hi0 = static_cast<uint32_t>(p0 >> 32), lo0 = static_cast<uint32_t>(p0);
    const uint32_t hi1 = static_cast<uint32_t>(p1 >> 32), lo1 = static_cast<uint32_t>(p1);
    const uint32_t c1 = c[1], c3 = c[3];
    c[0] = hi1 ^ c1 ^ k0;
    c[1] = lo1;
    c[2] = hi0 ^ c3 ^ k1;
    c[3] = lo0;
  }
}

/// Uniform in (0, 1) from one output word: ((w >> 9) + 0.5)·2⁻²³, an odd multiple of 2⁻²⁴. Every
/// value has at most 24 significant bits, so it is exact in float32 and float64 and the draw does not
/// depend on the dtype asked for; it is never 0 or 1 (from 2⁻²⁴ to 1 − 2⁻²⁴).
DIRMOE_HOST_DEVICE inline double philox_word_uniform(uint32_t word) {
  return (static_cast<double>(word >> 9) + 0.5) * (1.0 / 8388608.0);
}

}  // namespace dirmoe
