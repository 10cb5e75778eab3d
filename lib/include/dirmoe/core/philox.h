#pragma once
// Philox4x32-10, the counter-based generator of Salmon et al., "Parallel random numbers: as easy as
// 1, 2, 3" (SC 2011), as Random123 defines it: a 128-bit counter and a 64-bit key go through ten
// rounds of   (hi0, lo0) = mulhilo(0xD2511F53, c0), (hi1, lo1) = mulhilo(0xCD9E8D57, c2),
//             c ← (hi1 ⊕ c1 ⊕ k0, lo1, hi0 ⊕ c3 ⊕ k1, lo0),
// with the key bumped by (0x9E3779B9, 0xBB67AE85) between rounds. The output is a pure function of
// (counter, key): any element of a stream can be drawn alone, in any order, on any process, which is
// what makes router noise independent of how a batch is split (router_noise_source.h). The rounds
// themselves, and the word-to-uniform map, are in philox_rounds.h (host and CUDA device code).
#include <array>
#include <cstdint>

namespace dirmoe {

using PhiloxCounter = std::array<uint32_t, 4>;
using PhiloxKey = std::array<uint32_t, 2>;

/// The four 32-bit output words for one counter and key.
PhiloxCounter philox4x32_10(PhiloxCounter counter, PhiloxKey key);

}  // namespace dirmoe
