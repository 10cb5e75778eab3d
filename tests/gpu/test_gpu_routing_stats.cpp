// The routing-statistics accumulator keeps its counters on the device of the routing it records:
// CUDA counters against the same batches recorded on the CPU.
// [gpu]: ctest -L gpu (scripts/gpu_check.sh) runs these where a CUDA device answers.
// NOTE: torch before Catch: c10 defines a glog-style CHECK macro.
#include <torch/torch.h>
#include <catch2/catch.hpp>

#include "dirmoe/stats/routing_stats_accumulator.h"

using namespace dirmoe;

TEST_CASE("accumulator keeps its counters on CUDA", "[stats][gpu]") {
  REQUIRE(torch::cuda::is_available());
  auto gen = at::detail::createCPUGenerator(5);
  const int64_t E = 8;
  RoutingStatsAccumulator gpu({1, E, 3}), cpu({1, E, 3});
  for (int i = 0; i < 4; ++i) {
    auto mask = torch::rand({1000, E}, gen) < 0.3;
    auto w = torch::rand({1000, E}, gen);
    auto d = torch::randint(0, 3, {1000}, gen, torch::kInt64);
    cpu.set_domains(d);
    cpu.record(0, mask, w);
    gpu.set_domains(d.cuda());
    gpu.record(0, mask.cuda(), w.cuda());
  }
  const auto a = gpu.snapshot().layers[0], b = cpu.snapshot().layers[0];
  CHECK(a.tokens_per_expert == b.tokens_per_expert);
  CHECK(a.active_experts_hist == b.active_experts_hist);
  CHECK(a.expert_coactivation == b.expert_coactivation);
  CHECK(a.token_simpson_sum == Approx(b.token_simpson_sum).epsilon(1e-9));
  for (size_t i = 0; i < a.domain_expert_tokens.size(); ++i)
    CHECK(a.domain_expert_tokens[i] == Approx(b.domain_expert_tokens[i]).epsilon(1e-9));
}
