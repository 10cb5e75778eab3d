// AdamW + clipping + the LR schedule against hand computations from the formulas
// (Loshchilov & Hutter 2019, Alg. 2; torch.nn.utils.clip_grad_norm_'s rule; cosine with warm-up).
#include <catch2/catch.hpp>
#include <torch/torch.h>

#include <cmath>

#include "dirmoe/train/lr_schedule.h"
#include "dirmoe/train/optimizer.h"

namespace {

struct TinyImpl : torch::nn::Module {
  TinyImpl() {
    weight = register_parameter("weight", torch::tensor({{0.5, -1.0, 2.0}, {0.25, 0.0, -0.75}}, torch::kFloat64));
    gain = register_parameter("gain", torch::tensor({1.0, -2.0, 0.5}, torch::kFloat64));
  }
  torch::Tensor weight;  // (2, 3) — decays
  torch::Tensor gain;    // (3)    — does not
};

}  // namespace

TEST_CASE("decay policy: matrices decay, 1-D parameters do not", "[train][optimizer]") {
  TinyImpl m;
  const auto groups = dirmoe::split_parameters_for_decay(m);
  REQUIRE(groups.decay_names == std::vector<std::string>{"weight"});
  REQUIRE(groups.no_decay_names == std::vector<std::string>{"gain"});
}

TEST_CASE("one AdamW step with clipping equals the hand computation", "[train][optimizer]") {
  TinyImpl m;
  dirmoe::TrainConfig train;
  train.lr = 0.1;
  train.weight_decay = 0.2;
  train.adam_beta1 = 0.9;
  train.adam_beta2 = 0.95;
  train.adam_eps = 1e-3;  // large enough to matter in the check
  train.grad_clip = 1.0;
  auto opt = dirmoe::make_optimizer(m, train);

  const std::vector<double> w0 = {0.5, -1.0, 2.0, 0.25, 0.0, -0.75};
  const std::vector<double> g0 = {1.0, -2.0, 0.5};  // the gain's initial values
  const std::vector<double> gw = {0.3, -0.4, 1.2, 0.0, 2.0, -0.1};
  const std::vector<double> gg = {-0.5, 0.05, 1.5};
  m.weight.mutable_grad() = torch::tensor(gw, torch::kFloat64).reshape({2, 3});
  m.gain.mutable_grad() = torch::tensor(gg, torch::kFloat64);

  // Hand computation.
  double sq = 0;
  for (double v : gw) sq += v * v;
  for (double v : gg) sq += v * v;
  const double norm = std::sqrt(sq);
  REQUIRE(norm > train.grad_clip);  // clipping is active in this test
  const double scale = train.grad_clip / (norm + 1e-6);
  auto adam_first_step = [&](double p, double g, double wd) {
    g *= scale;
    p *= 1.0 - train.lr * wd;  // decoupled decay
    const double m1 = (1 - train.adam_beta1) * g;
    const double v1 = (1 - train.adam_beta2) * g * g;
    const double mhat = m1 / (1 - train.adam_beta1);
    const double denom = std::sqrt(v1) / std::sqrt(1 - train.adam_beta2) + train.adam_eps;
    return p - train.lr * mhat / denom;
  };

  const torch::Tensor total = dirmoe::clip_grad_norm(m.parameters(), train.grad_clip);
  CHECK(total.item<double>() == Approx(norm).epsilon(1e-6));
  opt->step();

  const torch::Tensor w1 = m.weight.detach().reshape({-1});
  for (size_t i = 0; i < w0.size(); ++i) {
    CHECK(w1[static_cast<int64_t>(i)].item<double>() == Approx(adam_first_step(w0[i], gw[i], train.weight_decay)).margin(1e-7));
  }
  for (size_t i = 0; i < g0.size(); ++i) {
    CHECK(m.gain[static_cast<int64_t>(i)].item<double>() == Approx(adam_first_step(g0[i], gg[i], 0.0)).margin(1e-7));
  }
}

TEST_CASE("clipping leaves small gradients alone and 0 disables it", "[train][optimizer]") {
  TinyImpl m;
  m.weight.mutable_grad() = torch::full({2, 3}, 0.01, torch::kFloat64);
  m.gain.mutable_grad() = torch::full({3}, 0.01, torch::kFloat64);
  const torch::Tensor norm = dirmoe::clip_grad_norm(m.parameters(), 1.0);
  CHECK(norm.item<double>() == Approx(0.03).epsilon(1e-6));
  CHECK(m.weight.grad()[0][0].item<double>() == Approx(0.01));
  m.weight.mutable_grad() = torch::full({2, 3}, 10.0, torch::kFloat64);
  dirmoe::clip_grad_norm(m.parameters(), 0.0);
  CHECK(m.weight.grad()[0][0].item<double>() == Approx(10.0));
}

TEST_CASE("learning-rate schedule: warm-up, cosine, floor", "[train][optimizer]") {
  dirmoe::TrainConfig train;
  train.max_steps = 100;
  train.warmup_frac = 0.1;
  train.lr = 1e-3;
  train.lr_min = 1e-4;
  REQUIRE(dirmoe::warmup_steps(train) == 10);
  CHECK(dirmoe::learning_rate_at(0, train) == Approx(1e-4));
  CHECK(dirmoe::learning_rate_at(4, train) == Approx(5e-4));
  CHECK(dirmoe::learning_rate_at(9, train) == Approx(1e-3));
  CHECK(dirmoe::learning_rate_at(10, train) == Approx(1e-3));
  CHECK(dirmoe::learning_rate_at(55, train) == Approx(1e-4 + 0.5 * 9e-4));  // half way: cos(π/2) = 0
  CHECK(dirmoe::learning_rate_at(99, train) == Approx(1e-4 + 0.5 * 9e-4 * (1 + std::cos(M_PI * 89.0 / 90.0))));
  CHECK(dirmoe::learning_rate_at(100, train) == Approx(1e-4));  // past the end: the floor
  CHECK(dirmoe::learning_rate_at(500, train) == Approx(1e-4));
  train.warmup_frac = 0.0;
  CHECK(dirmoe::learning_rate_at(0, train) == Approx(1e-3));
}
