// The accumulator's device-side counters against a naive per-token loop.
#include <catch2/catch.hpp>
#include <torch/torch.h>

#include <cmath>

#include "dirmoe/stats/routing_stats_accumulator.h"

using namespace dirmoe;

namespace {

struct Batch {
  torch::Tensor mask_TE, weights_TE, domains_T, tokens_T;
};

Batch random_batch(int64_t T, int64_t E, int64_t Dn, torch::Generator& gen) {
  Batch b;
  b.mask_TE = torch::rand({T, E}, gen) < 0.35;
  b.weights_TE = torch::rand({T, E}, gen).masked_fill(b.mask_TE.logical_not(), 0.0f);
  // some tokens with no expert, some with an expert of weight 0
  b.mask_TE.index_put_({0}, false);
  b.weights_TE.index_put_({0}, 0.0f);
  b.weights_TE.index_put_({1}, 0.0f);
  b.mask_TE.index_put_({1, 0}, true);
  b.domains_T = torch::randint(0, Dn, {T}, gen, torch::kInt64);
  b.tokens_T = torch::randint(0, 1000, {T}, gen, torch::kInt64);
  return b;
}

}  // namespace

TEST_CASE("accumulator matches a naive loop on random masks, weights and domains", "[stats]") {
  auto gen = at::detail::createCPUGenerator(1234);
  const int64_t L = 2, E = 5, Dn = 3, bins = 10;
  RoutingStatsAccumulator acc({/*n_layers=*/L, /*n_experts=*/E, /*n_domains=*/Dn, /*simpson_bins=*/bins});
  std::vector<std::vector<Batch>> batches(L);

  // naive accumulators
  std::vector<std::vector<int64_t>> tokens(L, std::vector<int64_t>(E, 0)), hist(L, std::vector<int64_t>(E + 1, 0)),
      coact(L, std::vector<int64_t>(E * E, 0)), shist(L, std::vector<int64_t>(bins, 0));
  std::vector<std::vector<double>> weight(L, std::vector<double>(E, 0)), dom(L, std::vector<double>(Dn * E, 0));
  std::vector<double> ssum(L, 0);
  std::vector<int64_t> scount(L, 0), ntok(L, 0);

  for (int forward = 0; forward < 3; ++forward) {
    const int64_t T = 37 + 11 * forward;
    const auto domains_T = torch::randint(0, Dn, {T}, gen, torch::kInt64);
    acc.set_domains(domains_T);
    for (int64_t l = 0; l < L; ++l) {
      auto b = random_batch(T, E, Dn, gen);
      acc.record(l, b.mask_TE, b.weights_TE);
      auto m = b.mask_TE.accessor<bool, 2>();
      auto w = b.weights_TE.accessor<float, 2>();
      auto d = domains_T.accessor<int64_t, 1>();
      ntok[l] += T;
      for (int64_t t = 0; t < T; ++t) {
        int k = 0;
        double total = 0;
        for (int64_t e = 0; e < E; ++e) {
          if (!m[t][e]) continue;
          ++k;
          tokens[l][e] += 1;
          weight[l][e] += w[t][e];
          total += w[t][e];
          for (int64_t f = 0; f < E; ++f) coact[l][e * E + f] += m[t][f] ? 1 : 0;
        }
        hist[l][k] += 1;
        if (total > 0) {
          double s = 0;
          for (int64_t e = 0; e < E; ++e) {
            if (!m[t][e]) continue;
            const double r = w[t][e] / total;
            s += r * r;
            dom[l][d[t] * E + e] += r;
          }
          ssum[l] += s;
          scount[l] += 1;
          shist[l][std::min<int64_t>(bins - 1, static_cast<int64_t>(std::floor(s * bins)))] += 1;
        }
      }
    }
  }
  const auto snap = acc.snapshot();
  REQUIRE(snap.layers.size() == static_cast<size_t>(L));
  CHECK_FALSE(snap.trace.has_value());
  for (int64_t l = 0; l < L; ++l) {
    const auto& s = snap.layers[l];
    CHECK(s.n_tokens == ntok[l]);
    CHECK(s.tokens_per_expert == tokens[l]);
    CHECK(s.active_experts_hist == hist[l]);
    CHECK(s.expert_coactivation == coact[l]);
    CHECK(s.token_simpson_hist == shist[l]);
    CHECK(s.token_simpson_count == scount[l]);
    CHECK(s.token_simpson_sum == Approx(ssum[l]).epsilon(1e-9));
    for (int64_t e = 0; e < E; ++e) CHECK(s.weight_per_expert[e] == Approx(weight[l][e]).epsilon(1e-6));
    for (int64_t i = 0; i < Dn * E; ++i) CHECK(s.domain_expert_tokens[i] == Approx(dom[l][i]).epsilon(1e-9));
  }

  acc.reset();
  const auto empty = acc.snapshot();
  CHECK(empty.layers[0].n_tokens == 0);
  CHECK(empty.layers[0].tokens_per_expert == std::vector<int64_t>(E, 0));
}

TEST_CASE("accumulator trace keeps subsampled tokens and their experts by weight", "[stats]") {
  const int64_t E = 4;
  RoutingStatsOptions options;
  options.n_layers = 2;
  options.n_experts = E;
  options.n_domains = 2;
  options.trace_stride = 2;
  options.trace_max_tokens = 3;
  RoutingStatsAccumulator acc(options);
  // 5 tokens; traced rows 0, 2, 4 (stride 2), capped at 3 tokens
  auto mask = torch::tensor({1, 0, 1, 0, /**/ 0, 1, 0, 0, /**/ 0, 0, 0, 1, /**/ 1, 1, 1, 1, /**/ 0, 1, 1, 0})
                  .reshape({5, E})
                  .to(torch::kBool);
  auto w = torch::tensor({0.2f, 0.f, 0.8f, 0.f, 0.f, 1.f, 0.f, 0.f, 0.f, 0.f, 0.f, 1.f, 0.25f, 0.25f, 0.25f, 0.25f,
                          0.f, 0.4f, 0.6f, 0.f})
               .reshape({5, E});
  acc.set_domains(torch::tensor({0, 1, 1, 0, 1}), torch::tensor({10, 11, 12, 13, 14}));
  acc.record(0, mask, w);
  acc.record(1, mask.flip(1), w.flip(1));
  acc.set_domains(torch::tensor({0, 1, 1, 0, 1}));  // capacity already reached
  acc.record(0, mask, w);
  acc.record(1, mask, w);
  const auto snap = acc.snapshot();
  REQUIRE(snap.trace.has_value());
  const auto& t = *snap.trace;
  CHECK(t.token_ids == std::vector<int64_t>{10, 12, 14});
  CHECK(t.domain_ids == std::vector<int32_t>{0, 1, 1});
  REQUIRE(t.max_active == 2);
  // layer 0: token 0 → experts 2 (0.8), 0 (0.2); token 2 → 3; token 4 → 2 (0.6), 1 (0.4)
  CHECK(std::vector<int16_t>(t.expert_ids.begin(), t.expert_ids.begin() + 6) ==
        std::vector<int16_t>{2, 0, 3, -1, 2, 1});
  CHECK(t.weights[0] == Approx(0.8f));
  CHECK(t.weights[3] == 0.0f);
  // layer 1 saw the experts mirrored: e → 3 − e
  CHECK(std::vector<int16_t>(t.expert_ids.begin() + 6, t.expert_ids.end()) == std::vector<int16_t>{1, 3, 0, -1, 1, 2});
}

TEST_CASE("accumulator rejects mismatched shapes", "[stats]") {
  RoutingStatsAccumulator acc({2, 4, 2});
  CHECK_THROWS(acc.record(2, torch::zeros({3, 4}, torch::kBool), torch::zeros({3, 4})));
  CHECK_THROWS(acc.record(0, torch::zeros({3, 5}, torch::kBool), torch::zeros({3, 5})));
  acc.set_domains(torch::zeros({7}, torch::kInt64));
  CHECK_THROWS(acc.record(0, torch::zeros({3, 4}, torch::kBool), torch::zeros({3, 4})));
}
