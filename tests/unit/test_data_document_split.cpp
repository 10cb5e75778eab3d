// Document-level split: deterministic from the seed, proportions as asked.
#include <catch2/catch.hpp>

#include "dirmoe/core/error.h"
#include "dirmoe/data/document_split.h"

using dirmoe::data::DocumentSplitter;

TEST_CASE("same seed same split, different seed different split", "[data][split]") {
  std::vector<std::string> docs;
  for (int i = 0; i < 20000; ++i) docs.push_back("document number " + std::to_string(i) + " with some text");
  const DocumentSplitter a(7, {0.8, 0.1, 0.1}), a2(7, {0.8, 0.1, 0.1}), b(8, {0.8, 0.1, 0.1});
  int64_t differ = 0;
  std::array<int64_t, 3> counts{};
  for (const auto& d : docs) {
    const int s = a.split_of(d);
    CHECK(s == a2.split_of(d));
    counts[static_cast<size_t>(s)]++;
    differ += s != b.split_of(d);
  }
  // Binomial: 20000 * 0.1 = 2000 ± 42 (sd); allow 5 sd.
  CHECK(std::abs(counts[0] - 16000) < 5 * 57);
  CHECK(std::abs(counts[1] - 2000) < 5 * 43);
  CHECK(std::abs(counts[2] - 2000) < 5 * 43);
  // Two independent splits disagree on 1 - (0.64 + 0.01 + 0.01) = 34% of documents.
  CHECK(differ > 6000);
  CHECK(differ < 7600);
}

TEST_CASE("split fractions are parsed and checked", "[data][split]") {
  const auto f = DocumentSplitter::parse_fractions("0.98,0.01,0.01");
  CHECK(f[0] == Approx(0.98));
  CHECK(f[2] == Approx(0.01));
  CHECK_THROWS_AS(DocumentSplitter::parse_fractions("0.9,0.1"), dirmoe::ConfigError);
  CHECK_THROWS_AS(DocumentSplitter::parse_fractions("0.9,x,0.1"), dirmoe::ConfigError);
  CHECK_THROWS_AS(DocumentSplitter(1, {0.5, 0.2, 0.2}), dirmoe::ConfigError);
  CHECK_THROWS_AS(DocumentSplitter(1, {1.2, -0.1, -0.1}), dirmoe::ConfigError);
}
