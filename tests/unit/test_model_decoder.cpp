// The decoder against an independent Python reference, causality, parameter counts, router hooks.
#include <catch2/catch.hpp>
#include <torch/torch.h>

#include <memory>
#include <vector>

#include "../support/python_reference.h"
#include "../support/test_routers.h"
#include "dirmoe/core/error.h"
#include "dirmoe/model/decoder.h"

using namespace dirmoe;

namespace {

Config tiny_config() {
  Config c;
  c.model.vocab_size = 37;
  c.model.d_model = 16;
  c.model.n_layers = 2;
  c.model.n_heads = 4;
  c.model.n_kv_heads = 2;
  c.model.d_ff = 24;
  c.model.seq_len = 16;
  c.model.n_experts = 4;
  c.model.n_experts_active = 2;
  c.model.rope_theta = 500.0;  // small θ so that positions rotate visibly over 8 tokens
  c.model.init_std = 0.3;      // large enough that every nonlinearity matters
  return c;
}

struct TestRouters {
  std::vector<std::shared_ptr<testing::SoftmaxTopkTestRouter>> made;
  double aux_coef = 0.05;
  RouterFactory factory() {
    return [this](const Config& c) {
      made.push_back(std::make_shared<testing::SoftmaxTopkTestRouter>(c.model.d_model, c.model.n_experts,
                                                                      c.model.n_experts_active, c.model.init_std,
                                                                      aux_coef));
      return made.back();
    };
  }
};

}  // namespace

TEST_CASE("decoder forward and gradients equal the Python reference (float64)", "[model][decoder]") {
  REQUIRE(testing::python_reference_available());
  torch::manual_seed(31);
  const Config c = tiny_config();
  TestRouters routers;
  Decoder model(c, routers.factory());
  model->to(torch::kFloat64);
  const torch::Tensor tokens_BT = torch::randint(0, c.model.vocab_size, {2, 8}, torch::kInt64);
  const torch::Tensor targets_BT = torch::randint(0, c.model.vocab_size, {2, 8}, torch::kInt64);

  DecoderOutput out = model->forward(tokens_BT);
  REQUIRE(out.aux_losses.count("test_sq") == 1);
  const torch::Tensor ce = torch::nn::functional::cross_entropy(out.logits_BTV.reshape({-1, c.model.vocab_size}),
                                                                targets_BT.reshape({-1}));
  (ce + out.aux_losses.at("test_sq")).backward();

  testing::TensorMap inputs = {{"tokens", tokens_BT}, {"targets", targets_BT}};
  auto scalar = [](double v) { return torch::tensor(v, torch::kFloat64); };
  inputs["d_model"] = scalar(c.model.d_model);
  inputs["n_layers"] = scalar(c.model.n_layers);
  inputs["n_heads"] = scalar(c.model.n_heads);
  inputs["n_kv_heads"] = scalar(c.model.n_kv_heads);
  inputs["n_experts"] = scalar(c.model.n_experts);
  inputs["k"] = scalar(c.model.n_experts_active);
  inputs["rope_theta"] = scalar(c.model.rope_theta);
  inputs["norm_eps"] = scalar(c.model.norm_eps);
  inputs["aux_coef"] = scalar(routers.aux_coef);
  for (const auto& p : model->named_parameters()) inputs["param." + p.key()] = p.value().detach();
  const testing::TensorMap ref = testing::run_python_reference("decoder_reference.py", inputs);

  CHECK(torch::allclose(out.logits_BTV, ref.at("logits"), 1e-6, 1e-9));
  CHECK(ce.item<double>() == Approx(ref.at("ce").item<double>()).epsilon(1e-9));
  CHECK(out.aux_losses.at("test_sq").item<double>() == Approx(ref.at("aux").item<double>()).epsilon(1e-9));
  int64_t checked = 0;
  for (const auto& p : model->named_parameters()) {
    INFO("parameter " << p.key());
    REQUIRE(p.value().grad().defined());
    const torch::Tensor& expected = ref.at("grad." + p.key());
    CHECK(expected.abs().max().item<double>() > 0);
    CHECK(torch::allclose(p.value().grad(), expected, 1e-6, 1e-9));
    ++checked;
  }
  CHECK(checked == 1 + 2 * (2 + 4 + 1 + 3) + 1 + 1);

  // Routing metrics, one entry per layer.
  REQUIRE(out.layers.size() == 2);
  for (const auto& layer : out.layers) {
    CHECK(layer.active_experts.item<double>() == Approx(2.0));
    CHECK(layer.tokens_per_expert_E.sum().item<int64_t>() == 2 * 16);
    CHECK(layer.dropped_tokens.item<int64_t>() == 0);
    CHECK(layer.router_metrics.count("active_experts") == 1);
  }
}

TEST_CASE("decoder is causal: a token changes no logits before it", "[model][decoder]") {
  torch::manual_seed(32);
  const Config c = tiny_config();
  TestRouters routers;
  Decoder model(c, routers.factory());
  model->to(torch::kFloat64);
  torch::NoGradGuard no_grad;
  const torch::Tensor tokens_BT = torch::randint(0, c.model.vocab_size, {2, 10}, torch::kInt64);
  const torch::Tensor before = model->forward(tokens_BT).logits_BTV;
  for (int64_t t : {0, 4, 9}) {
    torch::Tensor changed = tokens_BT.clone();
    changed.index_put_({0, t}, (tokens_BT[0][t].item<int64_t>() + 1) % c.model.vocab_size);
    const torch::Tensor after = model->forward(changed).logits_BTV;
    INFO("changed token " << t);
    // NOTE: not bitwise: expert batch sizes change with token t, and so may GEMM blocking.
    CHECK(torch::allclose(after.narrow(1, 0, t), before.narrow(1, 0, t), 0, 1e-12));
    CHECK_FALSE(torch::allclose(after[0][t], before[0][t]));
    if (t + 1 < 10) CHECK_FALSE(torch::allclose(after[0][t + 1], before[0][t + 1]));
    CHECK(torch::allclose(after[1], before[1], 0, 1e-12));  // the other sequence is untouched
  }
}

TEST_CASE("parameter counts equal a hand count", "[model][decoder]") {
  const Config c = tiny_config();  // V 37, D 16, L 2, H 4, G 2 (d_head 4), F 24, E 4
  TestRouters routers;
  Decoder model(c, routers.factory());
  const ParameterCounts n = model->parameter_counts();
  CHECK(n.embedding == 37 * 16);
  CHECK(n.attention == 2 * (16 * 16 + 8 * 16 + 8 * 16 + 16 * 16));
  CHECK(n.experts == 2 * 4 * 3 * 16 * 24);
  CHECK(n.router == 2 * 4 * 16);
  CHECK(n.norms == 2 * 2 * 16 + 16);
  CHECK(n.head == 37 * 16);
  int64_t all = 0;
  for (const auto& p : model->parameters()) all += p.numel();
  CHECK(n.total() == all);
  // Active with k = 2 of 4: half the experts, no embedding.
  CHECK(n.active(2.0, 4) == 1536 + 128 + 80 + 592 + 4608);
}

TEST_CASE("decoder forwards steps and controller updates to every router", "[model][decoder]") {
  const Config c = tiny_config();
  TestRouters routers;
  Decoder model(c, routers.factory());
  REQUIRE(routers.made.size() == 2);
  CHECK(routers.made[0] != routers.made[1]);
  model->set_step(17);
  model->update_controllers();
  model->update_controllers();
  for (const auto& r : routers.made) {
    CHECK(r->last_step == 17);
    CHECK(r->controller_updates == 2);
  }
}

TEST_CASE("decoder rejects a missing vocabulary size", "[model][decoder]") {
  Config c = tiny_config();
  c.model.vocab_size = 0;
  TestRouters routers;
  CHECK_THROWS_AS(Decoder(c, routers.factory()), ConfigError);
}
