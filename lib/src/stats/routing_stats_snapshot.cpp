#include "dirmoe/stats/routing_stats_snapshot.h"

#include <limits>

namespace dirmoe {

// NOTE: kept apart from the accumulator so that readers of routing files need no LibTorch.
double LayerRoutingStats::token_simpson_mean() const {
  return token_simpson_count > 0 ? token_simpson_sum / static_cast<double>(token_simpson_count)
                                 : std::numeric_limits<double>::quiet_NaN();
}

}  // namespace dirmoe
