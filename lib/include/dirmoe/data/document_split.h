#pragma once
// Train / validation / held-out assignment by document, deterministic from a seed.
#include <array>
#include <cstdint>
#include <string>
#include <string_view>

namespace dirmoe::data {

/// The three splits, in file-name order.
inline constexpr std::array<const char*, 3> kSplitNames = {"train", "validation", "heldout"};

/// Assigns a document to a split from a 64-bit hash of (seed, text): u = hash / 2^64 falls into
/// [0, f_train) → train, [f_train, f_train + f_val) → validation, else held-out.
/// NOTE: hashing the text (not the position) keeps the assignment independent of source order
/// and puts exact duplicates in the same split, so no document leaks from train into evaluation.
class DocumentSplitter {
 public:
  /// `fractions` must be >= 0 and sum to 1 (within 1e-6); throws ConfigError otherwise.
  DocumentSplitter(uint64_t seed, std::array<double, 3> fractions);
  /// 0 = train, 1 = validation, 2 = held-out.
  int split_of(std::string_view text) const;
  const std::array<double, 3>& fractions() const { return fractions_; }

  /// Parse "0.98,0.01,0.01"; throws ConfigError naming the value.
  static std::array<double, 3> parse_fractions(const std::string& text);

 private:
  uint64_t seed_;
  std::array<double, 3> fractions_;
};

/// 64-bit FNV-1a of a byte string followed by a splitmix64 finaliser (seeded).
uint64_t hash_text(std::string_view text, uint64_t seed);

/// splitmix64 finaliser (Steele, Lea, Flood 2014): a bijective 64-bit mixer.
inline uint64_t splitmix64(uint64_t x) {
  x += 0x9e3779b97f4a7c15ULL;
  x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9ULL;
  x = (x ^ (x >> 27)) * 0x94d049bb133111ebULL;
  return x ^ (x >> 31);
}

}  // namespace dirmoe::data
