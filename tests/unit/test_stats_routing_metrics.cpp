// Simpson-family metrics on hand-computed examples and their bounds.
#include <catch2/catch.hpp>

#include <cmath>
#include <random>

#include "dirmoe/stats/routing_metrics.h"

using namespace dirmoe::stats;

TEST_CASE("simpson index on hand-computed distributions", "[stats]") {
  CHECK(simpson_index({1, 1, 1, 1}) == Approx(0.25));
  CHECK(simpson_index({5, 0, 0}) == Approx(1.0));
  // p = (0.5, 0.25, 0.25): 0.25 + 0.0625 + 0.0625
  CHECK(simpson_index({2, 1, 1}) == Approx(0.375));
  CHECK(effective_number(0.375) == Approx(8.0 / 3.0));
  // p = (0.7, 0.2, 0.1): 0.49 + 0.04 + 0.01 = 0.54
  CHECK(simpson_index({0.7, 0.2, 0.1}) == Approx(0.54));
  CHECK(normalized_simpson(0.54, 3) == Approx((0.54 - 1.0 / 3) / (1 - 1.0 / 3)));
  CHECK(normalized_simpson(0.25, 4) == Approx(0.0).margin(1e-12));
  CHECK(normalized_simpson(1.0, 4) == Approx(1.0));
  CHECK(std::isnan(simpson_index({0, 0})));
  CHECK(std::isnan(normalized_simpson(1.0, 1)));
}

TEST_CASE("simpson index stays within [1/n, 1] on random inputs", "[stats]") {
  std::mt19937 rng(7);
  std::uniform_real_distribution<double> u(0, 1);
  for (int trial = 0; trial < 200; ++trial) {
    const int n = 1 + trial % 17;
    std::vector<double> v(n);
    for (auto& x : v) x = u(rng) < 0.3 ? 0.0 : u(rng);
    v[trial % n] += 0.1;
    const double s = simpson_index(v);
    CHECK(s >= 1.0 / n - 1e-12);
    CHECK(s <= 1.0 + 1e-12);
    if (n > 1) {
      CHECK(normalized_simpson(s, n) >= -1e-12);
      CHECK(normalized_simpson(s, n) <= 1.0 + 1e-12);
    }
  }
}

TEST_CASE("load imbalance, CV, entropy and mean active experts by hand", "[stats]") {
  // counts (6, 2, 2, 0): mean 2.5, max 6 → 2.4; var = (12.25+0.25+0.25+6.25)/4 = 4.75
  const std::vector<double> c = {6, 2, 2, 0};
  CHECK(load_imbalance(c) == Approx(2.4));
  CHECK(coefficient_of_variation(c) == Approx(std::sqrt(4.75) / 2.5));
  CHECK(entropy(c) == Approx(-(0.6 * std::log(0.6) + 2 * 0.2 * std::log(0.2))));
  CHECK(load_imbalance({3, 3, 3}) == Approx(1.0));
  CHECK(coefficient_of_variation({3, 3, 3}) == Approx(0.0).margin(1e-12));
  CHECK(entropy({1, 1, 1, 1}) == Approx(std::log(4.0)));
  // hist over 0..3 active: (1, 2, 0, 1) → (0 + 2 + 0 + 3)/4
  CHECK(mean_active_experts({1, 2, 0, 1}) == Approx(1.25));
}

TEST_CASE("expert-domain and domain-expert simpson by hand", "[stats]") {
  // Dn = 2, E = 3; M = [[3, 0, 1], [1, 2, 1]]
  const std::vector<double> M = {3, 0, 1, 1, 2, 1};
  const auto ed = expert_domain_simpson(M, 2, 3);
  REQUIRE(ed.size() == 3);
  CHECK(ed[0] == Approx(0.75 * 0.75 + 0.25 * 0.25));  // p(d|0) = (3/4, 1/4)
  CHECK(ed[1] == Approx(1.0));                        // only domain 1
  CHECK(ed[2] == Approx(0.5));                        // (1/2, 1/2)
  const auto de = domain_expert_simpson(M, 2, 3);
  REQUIRE(de.size() == 2);
  CHECK(de[0] == Approx(0.75 * 0.75 + 0.25 * 0.25));  // p(e|0) = (3/4, 0, 1/4)
  CHECK(de[1] == Approx(0.25 * 0.25 + 0.5 * 0.5 + 0.25 * 0.25));
  const auto empty = expert_domain_simpson({0, 1, 0, 1}, 2, 2);
  CHECK(std::isnan(empty[0]));
}

TEST_CASE("dirichlet reference curve", "[stats]") {
  CHECK(dirichlet_symmetric_simpson(1.0, 8) == Approx(2.0 / 9.0));
  // λ → 0: one expert takes everything; λ → ∞: uniform 1/K
  CHECK(dirichlet_symmetric_simpson(1e-9, 8) == Approx(1.0).epsilon(1e-6));
  CHECK(dirichlet_symmetric_simpson(1e9, 8) == Approx(1.0 / 8).epsilon(1e-6));
  // symmetric a = 1 reduces the general formula to the symmetric one
  CHECK(dirichlet_simpson(0.7, std::vector<double>(5, 1.0)) == Approx(dirichlet_symmetric_simpson(0.7, 5)));
  // a = (2, 1): B = 3, S2 = 5, λ = 1 → (5/3 + 1)/(3 + 1) = 2/3
  CHECK(dirichlet_simpson(1.0, {2.0, 1.0}) == Approx(2.0 / 3.0));
  const double h = dirichlet_symmetric_simpson(0.37, 8);
  CHECK(dirichlet_lambda_for_simpson(h, 8) == Approx(0.37));
}

TEST_CASE("dirichlet curve matches Monte Carlo draws", "[stats]") {
  std::mt19937_64 rng(11);
  const double lambda = 0.5;
  const int K = 6;
  std::gamma_distribution<double> gamma(lambda, 1.0);
  double mean = 0;
  const int n = 40000;
  for (int i = 0; i < n; ++i) {
    std::vector<double> g(K);
    for (auto& x : g) x = gamma(rng);
    mean += simpson_index(g);
  }
  mean /= n;
  CHECK(mean == Approx(dirichlet_symmetric_simpson(lambda, K)).epsilon(0.02));
}
