#pragma once
// Philox4x32-10, the counter-based generator of Salmon et al., "Parallel random numbers: as easy as
// 1, 2, 3" (SC 2011), as Random123 defines it: a 128-bit counter and a 64-bit key go through ten
// rounds of   (hi0, lo0) = mulhilo(0xD2511F53, c0), (hi1, lo1) = mulhilo(0xCD9E8D57, c2),
//             c ← (hi1 ⊕ c1 ⊕ k0, lo1, hi0 ⊕ c3 ⊕ k1, lo0),
// with the key bumped by (0x9E3779B9, 0xBB67AE85) between rounds. The output is a pure function of
// (counter, key): any element of a stream can be drawn alone, in any order, on any process, which is
// what makes router noise independent of how a batch is split (router_noise_source.h).
#include <array>
#include <cstdint>

#include "dirmoe/core/philox_rounds.h"

namespace dirmoe {

using PhiloxCounter = std::array<uint32_t, 4>;
using PhiloxKey = std::array<uint32_t, 2>;

/// The four 32-bit output words for one counter and key.
PhiloxCounter philox4x32_10(PhiloxCounter counter, PhiloxKey key);

/// Uniform in (0, 1) from one output word: ((w >> 9) + 0.5)·2⁻²³, an odd multiple of 2⁻²⁴. Every
/// value has at most 24 significant bits, so it is exact in float32 and float64 and the draw does not
/// depend on the dtype asked for; it is never 0 or 1 (from 2⁻²⁴ to 1 − 2⁻²⁴).
inline double philox_uniform(uint32_t word) { return philox_word_uniform(word); }

}  // namespace dirmoe
