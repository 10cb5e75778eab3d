// Counter-based router noise: Philox4x32-10 against Random123's known answers; uniforms and Gamma
// draws against an independent Python implementation of the written definition
// (tests/reference/router_noise_reference.py); the Gamma sampler's distribution against torch's own
// sampler (moments and a two-sample Kolmogorov–Smirnov test); and the property the trainer relies
// on: a token's draws do not depend on how the batch is split, for every router.
#include <algorithm>
#include <cmath>
#include <vector>

#include <catch2/catch.hpp>
#include <torch/torch.h>

#include "../support/python_reference.h"
#include "../support/router_test_util.h"
#include "dirmoe/core/philox.h"
#include "dirmoe/router/dirichlet.h"
#include "dirmoe/router/router.h"
#include "dirmoe/router/router_noise_source.h"

using dirmoe::RouterNoiseKey;
using dirmoe::RouterNoiseStream;

namespace {

/// Two-sample Kolmogorov–Smirnov statistic sup_x |F_a(x) − F_b(x)|.
double ks_statistic(torch::Tensor a, torch::Tensor b) {
  a = std::get<0>(a.to(torch::kFloat64).flatten().sort());
  b = std::get<0>(b.to(torch::kFloat64).flatten().sort());
  const double* pa = a.data_ptr<double>();
  const double* pb = b.data_ptr<double>();
  const int64_t na = a.numel(), nb = b.numel();
  int64_t i = 0, j = 0;
  double d = 0;
  while (i < na && j < nb) {
    const double x = std::min(pa[i], pb[j]);
    while (i < na && pa[i] <= x) ++i;
    while (j < nb && pb[j] <= x) ++j;
    d = std::max(d, std::abs(static_cast<double>(i) / na - static_cast<double>(j) / nb));
  }
  return d;
}

}  // namespace

TEST_CASE("philox4x32_10 gives Random123's known answers", "[router][noise]") {
  using dirmoe::philox4x32_10;
  CHECK(philox4x32_10({0, 0, 0, 0}, {0, 0}) == dirmoe::PhiloxCounter{0x6627e8d5, 0xe169c58d, 0xbc57ac4c, 0x9b00dbd8});
  CHECK(philox4x32_10({0xffffffff, 0xffffffff, 0xffffffff, 0xffffffff}, {0xffffffff, 0xffffffff}) ==
        dirmoe::PhiloxCounter{0x408f276d, 0x41c83b0e, 0xa20bc7c6, 0x6d5451fd});
  CHECK(philox4x32_10({0x243f6a88, 0x85a308d3, 0x13198a2e, 0x03707344}, {0xa4093822, 0x299f31d0}) ==
        dirmoe::PhiloxCounter{0xd16cfe09, 0x94fdcceb, 0x5001e420, 0x24126ea1});
}

TEST_CASE("router noise: uniform and Gamma draws equal the Python reference", "[router][noise][python]") {
  REQUIRE(dirmoe::testing::python_reference_available());
  const RouterNoiseKey key{/*seed=*/0x123456789abcULL, /*draw=*/77, /*layer=*/3, /*token_offset=*/(int64_t{1} << 33) + 5};
  const int64_t rows = 6, cols = 5, words = 6;
  const torch::Tensor u = dirmoe::counter_uniform(key, RouterNoiseStream::selection, rows, cols, words, torch::kFloat64);
  torch::manual_seed(3);
  const torch::Tensor alpha = torch::cat({torch::tensor({0.01, 0.3, 0.99, 1.0, 7.5}, torch::kFloat64).reshape({1, 5}),
                                          torch::rand({rows - 1, cols}, torch::kFloat64) * 5.0 + 0.02});
  const torch::Tensor g = dirmoe::counter_gamma(key, RouterNoiseStream::gamma, alpha);
  using dirmoe::testing::scalar;
  auto out = dirmoe::testing::run_python_reference(
      "router_noise_reference.py",
      {{"seed", torch::tensor(static_cast<int64_t>(key.seed))}, {"draw", torch::tensor(key.draw)},
       {"layer", torch::tensor(key.layer)}, {"token_offset", torch::tensor(key.token_offset)},
       {"stream", torch::tensor(static_cast<int64_t>(RouterNoiseStream::selection))},
       {"gamma_stream", torch::tensor(static_cast<int64_t>(RouterNoiseStream::gamma))},
       {"rows", torch::tensor(rows)}, {"cols", torch::tensor(cols)}, {"words", torch::tensor(words)}, {"alpha", alpha}});
  CHECK(torch::equal(u, out.at("uniform")));
  CHECK(dirmoe::testing::max_abs_diff(g / out.at("gamma"), torch::ones_like(g)) < 1e-12);
  // the tensor-operation path (CUDA's) computes the same draws
  const torch::Tensor g_ops = dirmoe::counter_gamma_tensor_ops(key, RouterNoiseStream::gamma, alpha);
  CHECK(dirmoe::testing::max_abs_diff(g_ops / out.at("gamma"), torch::ones_like(g)) < 1e-12);
}

TEST_CASE("router noise: the element-wise CPU Gamma path equals the tensor-operation path", "[router][noise]") {
  // α from 1e-3 to 1e3 (boosted and not), float64 and float32, keys far apart; candidates beyond the
  // first are exercised by small a (acceptance lowest near α → 1/3 + 1)
  torch::manual_seed(21);
  const torch::Tensor alpha_TC = torch::exp(torch::rand({4096, 8}, torch::kFloat64) * 13.8 - 6.9);
  for (const RouterNoiseKey key : {RouterNoiseKey{1, 0, 0, 0}, RouterNoiseKey{0xfedcba9876ULL, 123456, 77, int64_t{1} << 40}}) {
    const torch::Tensor by_element = dirmoe::counter_gamma_elementwise(key, RouterNoiseStream::gamma, alpha_TC);
    const torch::Tensor by_ops = dirmoe::counter_gamma_tensor_ops(key, RouterNoiseStream::gamma, alpha_TC);
    CHECK(dirmoe::testing::max_abs_diff(by_element / by_ops, torch::ones_like(by_ops)) < 1e-12);
    const torch::Tensor alpha32 = alpha_TC.to(torch::kFloat32);
    const torch::Tensor e32 = dirmoe::counter_gamma_elementwise(key, RouterNoiseStream::gamma, alpha32);
    const torch::Tensor o32 = dirmoe::counter_gamma_tensor_ops(key, RouterNoiseStream::gamma, alpha32);
    CHECK(e32.scalar_type() == torch::kFloat32);
    // float32: the same float64 draw rounded once; at most one float32 ulp apart where the float64
    // values differ in their last bits across a rounding boundary
    CHECK(dirmoe::testing::max_abs_diff((e32.to(torch::kFloat64) / o32.to(torch::kFloat64)), torch::ones({4096, 8}, torch::kFloat64)) < 2.5e-7);
  }
  // counter_gamma takes the element-wise path for CPU tensors
  CHECK(torch::equal(dirmoe::counter_gamma({5, 1, 2, 3}, RouterNoiseStream::gamma, alpha_TC),
                     dirmoe::counter_gamma_elementwise({5, 1, 2, 3}, RouterNoiseStream::gamma, alpha_TC)));
}

TEST_CASE("router noise: a token's draws do not depend on how the batch is split", "[router][noise]") {
  const RouterNoiseKey whole{42, 5, 1, 0};
  const torch::Tensor all = dirmoe::counter_uniform(whole, RouterNoiseStream::selection, 12, 7, 1, torch::kFloat32);
  RouterNoiseKey second = whole;
  second.token_offset = 8;
  const torch::Tensor tail = dirmoe::counter_uniform(second, RouterNoiseStream::selection, 4, 7, 1, torch::kFloat32);
  CHECK(torch::equal(all.narrow(0, 8, 4), tail));
  // the dtype changes nothing: the values are exact in float32
  CHECK(torch::equal(all.to(torch::kFloat64),
                     dirmoe::counter_uniform(whole, RouterNoiseStream::selection, 12, 7, 1, torch::kFloat64)));
  // every key field and the stream select other numbers
  for (auto [name, key, stream] : std::vector<std::tuple<std::string, RouterNoiseKey, RouterNoiseStream>>{
           {"seed", {43, 5, 1, 0}, RouterNoiseStream::selection},
           {"draw", {42, 6, 1, 0}, RouterNoiseStream::selection},
           {"layer", {42, 5, 2, 0}, RouterNoiseStream::selection},
           {"stream", {42, 5, 1, 0}, RouterNoiseStream::jitter}}) {
    INFO(name);
    const torch::Tensor other = dirmoe::counter_uniform(key, stream, 12, 7, 1, torch::kFloat32);
    CHECK((other == all).to(torch::kFloat32).mean().item<double>() < 0.01);
  }
  const torch::Tensor alpha = torch::full({12, 3}, 0.7, torch::kFloat64);
  RouterNoiseKey g2 = whole;
  g2.token_offset = 8;
  CHECK(torch::equal(dirmoe::counter_gamma(whole, RouterNoiseStream::gamma, alpha).narrow(0, 8, 4),
                     dirmoe::counter_gamma(g2, RouterNoiseStream::gamma, alpha.narrow(0, 8, 4))));
}

// The CPU draws are loops over tokens shared among the intra-op threads (at::parallel_for): the
// numbers are a function of the counter alone, so any thread count gives the same bits. ctest runs
// with OMP_NUM_THREADS=1; this sets its own counts, with enough rows for several chunks each.
TEST_CASE("router noise: the CPU draws do not depend on the number of threads", "[router][noise]") {
  const int threads_before = torch::get_num_threads();
  const RouterNoiseKey key{42, 3, 2, 1000};
  const torch::Tensor alpha_TC = torch::rand({1500, 8}, torch::kFloat64) * 3 + 0.05;
  auto draws = [&](int threads) {
    torch::set_num_threads(threads);
    return std::vector<torch::Tensor>{
        dirmoe::counter_uniform(key, RouterNoiseStream::selection, 1500, 8, 5, torch::kFloat32),
        dirmoe::counter_uniform(key, RouterNoiseStream::jitter, 1500, 8, 1, torch::kFloat64),
        dirmoe::counter_gamma(key, RouterNoiseStream::gamma, alpha_TC),
        dirmoe::counter_gamma(key, RouterNoiseStream::gamma, alpha_TC.to(torch::kFloat32))};
  };
  const auto one = draws(1);
  const auto three = draws(3);
  torch::set_num_threads(threads_before);
  for (size_t i = 0; i < one.size(); ++i) {
    INFO("draw " << i << " (uniform f32 × 5 words, uniform f64, Gamma f64, Gamma f32)");
    CHECK(torch::equal(one[i], three[i]));
  }
}

TEST_CASE("router noise: uniforms have the moments of U(0,1) and no lag correlation", "[router][noise]") {
  const torch::Tensor u = dirmoe::counter_uniform({7, 0, 0, 0}, RouterNoiseStream::selection, 4096, 64, 1, torch::kFloat64);
  const double n = static_cast<double>(u.numel());
  CHECK(u.min().item<double>() > 0.0);
  CHECK(u.max().item<double>() < 1.0);
  CHECK(std::abs(u.mean().item<double>() - 0.5) < 4.0 * std::sqrt(1.0 / 12.0 / n));
  CHECK(std::abs(u.var().item<double>() - 1.0 / 12.0) < 4.0 * std::sqrt(1.0 / 180.0 / n));
  const torch::Tensor c = u - 0.5;
  // neighbouring tokens, neighbouring columns: correlation ~ N(0, 1/n)
  const double by_token = (c.narrow(0, 0, 4095) * c.narrow(0, 1, 4095)).mean().item<double>() * 12.0;
  const double by_column = (c.narrow(1, 0, 63) * c.narrow(1, 1, 63)).mean().item<double>() * 12.0;
  CHECK(std::abs(by_token) < 4.0 / std::sqrt(n));
  CHECK(std::abs(by_column) < 4.0 / std::sqrt(n));
  CHECK(ks_statistic(u, torch::linspace(0.5 / n, 1.0 - 0.5 / n, static_cast<int64_t>(n), torch::kFloat64)) <
        1.95 / std::sqrt(n));
}

TEST_CASE("router noise: Gamma draws follow torch's Gamma sampler", "[router][noise]") {
  // n draws each; two-sample KS at the 0.1% level: D < 1.95·sqrt(2/n). Fixed seeds: deterministic.
  const int64_t n = 20000;
  torch::manual_seed(11);
  for (double a : {0.02, 0.2, 0.5, 0.999, 1.0, 2.5, 40.0}) {
    INFO("alpha " << a);
    const torch::Tensor alpha_TC = torch::full({n / 4, 4}, a, torch::kFloat64);
    const torch::Tensor ours = dirmoe::counter_gamma({2024, 1, 0, 0}, RouterNoiseStream::gamma, alpha_TC);
    const torch::Tensor torchs = at::_standard_gamma(alpha_TC);
    CHECK(ours.min().item<double>() > 0.0);
    CHECK(ks_statistic(ours, torchs) < 1.95 * std::sqrt(2.0 / n));
    // E[x] = α, Var[x] = α: means within 4 standard errors
    CHECK(std::abs(ours.mean().item<double>() - a) < 4.0 * std::sqrt(a / n));
    // Var of the sample variance ≈ (μ4 − σ⁴)/n with μ4 = 3α² + 6α for Gamma(α, 1)
    CHECK(std::abs(ours.var().item<double>() - a) < 4.0 * std::sqrt((2.0 * a * a + 6.0 * a) / n));
  }
  // float32 α gives float32 draws, never below the smallest normal
  const torch::Tensor tiny = dirmoe::counter_gamma({1, 0, 0, 0}, RouterNoiseStream::gamma,
                                                   torch::full({256, 4}, 1e-3, torch::kFloat32));
  CHECK(tiny.scalar_type() == torch::kFloat32);
  CHECK(tiny.min().item<float>() >= std::numeric_limits<float>::min());
}

TEST_CASE("router noise: counter Gamma draws carry the implicit reparameterisation gradient", "[router][noise]") {
  const torch::Tensor alpha = (torch::rand({64, 4}, torch::kFloat64) * 3.0 + 0.1).requires_grad_(true);
  const torch::Tensor draws = dirmoe::counter_gamma({9, 2, 0, 0}, RouterNoiseStream::gamma, alpha);
  const torch::Tensor gamma = dirmoe::gamma_reparam(alpha, draws);
  CHECK(torch::equal(gamma.detach(), draws));
  gamma.sum().backward();
  CHECK(dirmoe::testing::max_abs_diff(alpha.grad(), at::_standard_gamma_grad(alpha.detach(), draws)) == 0.0);
}

TEST_CASE("router noise: every router routes a token alike however the batch is split", "[router][noise]") {
  for (const std::string type : {"topk", "remoe", "sparsemixer", "dirmoe"}) {
    INFO(type);
    auto config = dirmoe::testing::router_test_config(type, 16, 4, type == "sparsemixer" ? 2 : 1);
    config.router.topk.jitter = 0.1;  // topk's only noise
    torch::manual_seed(5);
    auto router = dirmoe::make_router(config);
    router->train();
    if (type == "sparsemixer") {
      // nearly equal scores: every expert stays a candidate, so the Gumbel draw decides
      torch::NoGradGuard no_grad;
      auto w = router->named_parameters()["weight"];
      w.copy_(torch::full_like(w, 0.3) + 1e-4 * torch::randn_like(w));
    }
    torch::manual_seed(6);
    const torch::Tensor x = torch::randn({10, 16});
    dirmoe::RouterNoise whole, head, tail;
    whole.key = head.key = tail.key = RouterNoiseKey{77, 3, 2, 100};
    tail.key->token_offset = 106;
    const auto all = router->forward(x, whole);
    torch::manual_seed(999);  // torch's generator must play no part
    const auto a = router->forward(x.narrow(0, 0, 6), head);
    const auto b = router->forward(x.narrow(0, 6, 4), tail);
    CHECK(torch::equal(all.dispatch_mask_TE, torch::cat({a.dispatch_mask_TE, b.dispatch_mask_TE})));
    CHECK(dirmoe::testing::max_abs_diff(all.weights_TE, torch::cat({a.weights_TE, b.weights_TE})) < 1e-6);
    // and the noise is there: another draw routes differently
    dirmoe::RouterNoise other = whole;
    other.key->draw = 4;
    if (type != "remoe") {  // ReMoE draws nothing
      CHECK(dirmoe::testing::max_abs_diff(router->forward(x, other).weights_TE, all.weights_TE) > 1e-4);
    }
  }
}
