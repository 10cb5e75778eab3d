// How the fused CPU experts share their GEMMs among threads: every row (column) of every expert
// with rows lands in exactly one block of one part, inside its expert, and the parts are equal
// shares of the work.
#include <catch2/catch.hpp>

#include <algorithm>
#include <random>
#include <vector>

#include "dirmoe/model/expert_partition.h"

using namespace dirmoe;

namespace {

std::vector<std::vector<int64_t>> count_cases() {
  std::mt19937 gen(5);
  std::vector<std::vector<int64_t>> cases = {{0, 3, 0, 9, 5, 0}, {0, 0, 64, 0}, {1}, {0, 0}, {7, 7, 7, 7}};
  for (int i = 0; i < 20; ++i) {
    std::vector<int64_t> c(1 + gen() % 9);
    for (auto& n : c) n = gen() % 4 == 0 ? 0 : static_cast<int64_t>(gen() % 300);
    cases.push_back(c);
  }
  return cases;
}

}  // namespace

TEST_CASE("row blocks cover every row once, inside its expert, in equal parts", "[model][experts]") {
  for (const auto& counts : count_cases()) {
    int64_t n_rows = 0;
    std::vector<int64_t> expert_of;
    for (size_t e = 0; e < counts.size(); ++e) {
      n_rows += counts[e];
      expert_of.insert(expert_of.end(), static_cast<size_t>(counts[e]), static_cast<int64_t>(e));
    }
    for (int64_t parts = 1; parts <= 5; ++parts) {
      INFO("counts of " << counts.size() << " experts, " << n_rows << " rows, " << parts << " parts");
      const auto split = split_expert_rows(counts, parts);
      REQUIRE(split.size() == static_cast<size_t>(parts));
      std::vector<int> seen(static_cast<size_t>(n_rows), 0);
      for (const auto& part : split) {
        int64_t rows = 0;
        for (const ExpertBlock& b : part) {
          REQUIRE(b.count > 0);
          for (int64_t r = b.first; r < b.first + b.count; ++r) {
            REQUIRE(expert_of[static_cast<size_t>(r)] == b.expert);
            ++seen[static_cast<size_t>(r)];
          }
          rows += b.count;
        }
        CHECK(std::abs(rows - n_rows / parts) <= 1);
      }
      CHECK(std::all_of(seen.begin(), seen.end(), [](int s) { return s == 1; }));
    }
  }
  CHECK_THROWS(split_expert_rows({1, 2}, 0));
}

TEST_CASE("column blocks cover every column of every used expert once, in equal shares of work",
          "[model][experts]") {
  const int64_t n_cols = 37;
  for (const auto& counts : count_cases()) {
    int64_t total = 0, heaviest = 0;
    for (int64_t n : counts) total += n * n_cols, heaviest = std::max(heaviest, n);
    for (int64_t parts = 1; parts <= 5; ++parts) {
      INFO(counts.size() << " experts, " << parts << " parts");
      const auto split = split_expert_columns(counts, n_cols, parts);
      REQUIRE(split.size() == static_cast<size_t>(parts));
      std::vector<std::vector<int>> seen(counts.size(), std::vector<int>(static_cast<size_t>(n_cols), 0));
      for (const auto& part : split) {
        int64_t work = 0;
        for (const ExpertBlock& b : part) {
          REQUIRE(b.count > 0);
          REQUIRE(counts[static_cast<size_t>(b.expert)] > 0);
          REQUIRE(b.first + b.count <= n_cols);
          for (int64_t c = b.first; c < b.first + b.count; ++c) ++seen[static_cast<size_t>(b.expert)][static_cast<size_t>(c)];
          work += b.count * counts[static_cast<size_t>(b.expert)];
        }
        // an equal share, give or take the one column a boundary falls in
        CHECK(std::abs(work - total / parts) <= heaviest + 1);
      }
      for (size_t e = 0; e < counts.size(); ++e) {
        const int want = counts[e] > 0 ? 1 : 0;
        CHECK(std::all_of(seen[e].begin(), seen[e].end(), [&](int s) { return s == want; }));
      }
    }
  }
}
