#include "dirmoe/model/expert_partition.h"

#include <algorithm>
#include <cmath>
#include <stdexcept>

namespace dirmoe {

std::vector<std::vector<ExpertBlock>> split_expert_rows(const std::vector<int64_t>& counts, int64_t parts) {
  if (parts < 1) throw std::invalid_argument("split_expert_rows: parts must be >= 1");
  int64_t n_rows = 0;
  for (int64_t n : counts) n_rows += n;
  std::vector<std::vector<ExpertBlock>> out(static_cast<size_t>(parts));
  for (int64_t p = 0; p < parts; ++p) {
    const int64_t lo = n_rows * p / parts, hi = n_rows * (p + 1) / parts;
    int64_t start = 0;
    for (size_t e = 0; e < counts.size(); ++e) {
      const int64_t a = std::max(lo, start), b = std::min(hi, start + counts[e]);
      if (a < b) out[static_cast<size_t>(p)].push_back({static_cast<int64_t>(e), a, b - a});
      start += counts[e];
    }
  }
  return out;
}

std::vector<std::vector<ExpertBlock>> split_expert_columns(const std::vector<int64_t>& counts, int64_t n_cols,
                                                           int64_t parts) {
  if (parts < 1) throw std::invalid_argument("split_expert_columns: parts must be >= 1");
  int64_t total = 0;
  for (int64_t n : counts) total += n * n_cols;
  // Expert e's column c sits at work offset offset_e + c·counts[e]; the cut of part boundary
  // b (in work units) inside expert e is the first column at or after it, so every boundary
  // falls between two columns and the parts' column ranges nest without overlap.
  auto cut = [&](int64_t boundary, int64_t offset, int64_t n) {
    const int64_t c = (boundary - offset + n - 1) / n;  // ceil for boundary > offset
    return boundary <= offset ? int64_t{0} : std::min(n_cols, c);
  };
  std::vector<std::vector<ExpertBlock>> out(static_cast<size_t>(parts));
  for (int64_t p = 0; p < parts; ++p) {
    const int64_t lo = total * p / parts, hi = total * (p + 1) / parts;
    int64_t offset = 0;
    for (size_t e = 0; e < counts.size(); ++e) {
      const int64_t n = counts[e];
      if (n == 0) continue;
      const int64_t a = cut(lo, offset, n), b = cut(hi, offset, n);
      if (a < b) out[static_cast<size_t>(p)].push_back({static_cast<int64_t>(e), a, b - a});
      offset += n * n_cols;
    }
  }
  return out;
}

}  // namespace dirmoe
