#include "dirmoe/data/document_split.h"

#include <cmath>
#include <sstream>

#include <fmt/format.h>

#include "dirmoe/core/error.h"

namespace dirmoe::data {

uint64_t hash_text(std::string_view text, uint64_t seed) {
  uint64_t h = 0xcbf29ce484222325ULL ^ splitmix64(seed);
  for (unsigned char c : text) {
    h ^= c;
    h *= 0x100000001b3ULL;
  }
  return splitmix64(h ^ splitmix64(seed + 0x632be59bd9b4e019ULL));
}

DocumentSplitter::DocumentSplitter(uint64_t seed, std::array<double, 3> fractions) : seed_(seed), fractions_(fractions) {
  double sum = 0;
  for (double f : fractions) {
    if (!(f >= 0) || !std::isfinite(f)) {
      throw ConfigError(fmt::format("split fractions must be >= 0, got {},{},{}", fractions[0], fractions[1], fractions[2]));
    }
    sum += f;
  }
  if (std::abs(sum - 1.0) > 1e-6) {
    throw ConfigError(fmt::format("split fractions must sum to 1 (train,validation,heldout), got {},{},{} (sum {})",
                                  fractions[0], fractions[1], fractions[2], sum));
  }
  if (fractions[0] <= 0) throw ConfigError("the train split fraction must be > 0");
}

int DocumentSplitter::split_of(std::string_view text) const {
  const double u = static_cast<double>(hash_text(text, seed_) >> 11) * 0x1.0p-53;
  if (u < fractions_[0]) return 0;
  if (u < fractions_[0] + fractions_[1]) return 1;
  return 2;
}

std::array<double, 3> DocumentSplitter::parse_fractions(const std::string& text) {
  std::array<double, 3> f{};
  std::istringstream in(text);
  std::string item;
  int n = 0;
  while (std::getline(in, item, ',')) {
    if (n >= 3) break;
    try {
      size_t used = 0;
      f[n] = std::stod(item, &used);
      if (used != item.size()) throw std::invalid_argument(item);
    } catch (const std::exception&) {
      throw ConfigError(fmt::format("--split '{}': '{}' is not a number; expected e.g. 0.98,0.01,0.01", text, item));
    }
    ++n;
  }
  if (n != 3 || std::getline(in, item, ',')) {
    throw ConfigError(fmt::format("--split '{}': expected three fractions train,validation,heldout, e.g. 0.98,0.01,0.01", text));
  }
  return f;
}

}  // namespace dirmoe::data
