// Numerical faults in a real decoder: a NaN that enters training through the batch (the embedding
// row of a token the batch holds) or through a router's logits (its gate weights) stops the run at
// that step with TrainingDiverged naming the loss terms that went bad and the step, and
// summary.json records them; a DirMoE router with no expert selected anywhere and no θ floor stays
// finite (the fallback dispatches the arg-max expert).
// NOTE: torch before Catch: c10 defines a glog-style CHECK macro that would otherwise replace
// Catch's in builds without the precompiled header.
#include <torch/torch.h>
#include <catch2/catch.hpp>
#include <unistd.h>

#include <filesystem>
#include <functional>
#include <limits>
#include <sstream>

#include "dirmoe/core/atomic_file.h"
#include "dirmoe/model/decoder.h"
#include "dirmoe/router/dirmoe_router.h"
#include "dirmoe/train/trainable_model.h"
#include "dirmoe/train/trainer.h"
#include "../support/test_files.h"

namespace fs = std::filesystem;

namespace {

constexpr int64_t kVocab = 24;

/// Seeded random windows; `before_draw(i)` runs before draw i (0-based) is made.
class HookedSource : public dirmoe::BatchSource {
 public:
  HookedSource(int64_t seq_len, std::function<void(int64_t)> before_draw)
      : seq_len_(seq_len), before_draw_(std::move(before_draw)) {}
  torch::Tensor next_batch(int64_t batch_size) override {
    before_draw_(draws_);
    torch::Generator gen = at::detail::createCPUGenerator(/*seed_in=*/1000 + static_cast<uint64_t>(draws_++));
    return torch::randint(kVocab, {batch_size, seq_len_ + 1}, gen, torch::kInt64);
  }
  nlohmann::json state() const override { return {{"draws", draws_}}; }
  void restore(const nlohmann::json& s) override { draws_ = s.at("draws").get<int64_t>(); }

 private:
  int64_t seq_len_;
  std::function<void(int64_t)> before_draw_;
  int64_t draws_ = 0;
};

dirmoe::Config small_decoder_config(const std::string& router) {
  dirmoe::Config c;
  c.model.vocab_size = kVocab;
  c.model.d_model = 16;
  c.model.n_layers = 2;
  c.model.n_heads = 2;
  c.model.n_kv_heads = 1;
  c.model.d_ff = 24;
  c.model.seq_len = 8;
  c.model.n_experts = 4;
  c.model.n_experts_active = 1;
  c.router.type = router;
  c.train.device = "cpu";
  c.train.threads = 1;
  c.train.batch_size = 2;
  c.train.grad_accum = 1;
  c.train.max_steps = 8;
  c.train.log_every = 1;
  c.train.eval_every = 0;
  c.train.ckpt_every = 2;
  c.validate();
  return c;
}

/// Trains until divergence with `poison` applied to the model just before batch 2 (step 3) is
/// drawn; returns the exception's message (empty if training finished).
std::string train_poisoned(const dirmoe::Config& c, const fs::path& dir,
                           const std::function<void(torch::nn::Module&)>& poison) {
  torch::manual_seed(5);
  dirmoe::Decoder decoder(c);
  auto model = dirmoe::make_trainable(decoder);
  torch::nn::Module& module = model->module();
  std::ostringstream log;
  dirmoe::TrainerIo io;
  io.out_dir = dir;
  io.log = &log;
  auto source = std::make_unique<HookedSource>(c.model.seq_len, [&](int64_t draw) {
    if (draw == 2) {
      torch::NoGradGuard no_grad;
      poison(module);
    }
  });
  dirmoe::Trainer trainer(c, model, std::move(source), {}, io);
  try {
    trainer.run();
  } catch (const dirmoe::TrainingDiverged& e) {
    return e.what();
  }
  return "";
}

torch::Tensor parameter_named(torch::nn::Module& module, const std::string& suffix) {
  for (const auto& item : module.named_parameters()) {
    const std::string& name = item.key();
    if (name.size() >= suffix.size() && name.compare(name.size() - suffix.size(), suffix.size(), suffix) == 0) {
      return item.value();
    }
  }
  FAIL("no parameter named *" << suffix);
  return {};
}

}  // namespace

TEST_CASE("a NaN entering through the batch's embeddings stops training at that step", "[train][faults]") {
  const fs::path dir = dirmoe::testing::fresh_test_dir("nan_embedding");
  const auto c = small_decoder_config("dirmoe");
  const std::string message = train_poisoned(c, dir, [](torch::nn::Module& m) {
    parameter_named(m, "tok_embedding").fill_(std::numeric_limits<float>::quiet_NaN());
  });
  CHECK_THAT(message, Catch::Contains("'lm_loss'") && Catch::Contains("at step 3") &&
                          Catch::Contains("step_00000002.ckpt"));
  const auto summary = nlohmann::json::parse(dirmoe::read_file(dir / "summary.json"));
  CHECK(summary["status"] == "diverged");
  CHECK(summary["bad_step"] == 3);
  CHECK(summary["bad_term"] == "lm_loss");
  // No checkpoint was written from the poisoned state.
  CHECK_FALSE(fs::exists(dir / "checkpoints" / "step_00000004.ckpt"));
  fs::remove_all(dir);
}

TEST_CASE("a NaN in a router's logits is named with the router's own loss terms", "[train][faults]") {
  const fs::path dir = dirmoe::testing::fresh_test_dir("nan_router");
  const auto c = small_decoder_config("topk");
  const std::string message = train_poisoned(c, dir, [](torch::nn::Module& m) {
    // One expert's gate row (the first parameter so named: layer 0): its logit is NaN for every token.
    parameter_named(m, "router.weight")[1].fill_(std::numeric_limits<float>::quiet_NaN());
  });
  CHECK_THAT(message, Catch::Contains("at step 3") && Catch::Contains("aux/topk_z"));
  const auto summary = nlohmann::json::parse(dirmoe::read_file(dir / "summary.json"));
  CHECK(summary["status"] == "diverged");
  CHECK(summary["bad_step"] == 3);
  REQUIRE(summary.contains("bad_terms"));
  const auto terms = summary["bad_terms"].get<std::vector<std::string>>();
  CHECK(std::find(terms.begin(), terms.end(), "aux/topk_z") != terms.end());
  CHECK(std::find(terms.begin(), terms.end(), "lm_loss") != terms.end());
  fs::remove_all(dir);
}

TEST_CASE("dirmoe with every token's selection empty and no theta floor stays finite", "[router][dirmoe][faults]") {
  // the threshold dispatch with weights renormalised over the dispatched experts (where θ ≈ 0 overflows
  // first), and the defaults (top-k dispatch, r over all E, computed in log space)
  for (const auto& [selection, weights] : {std::pair<std::string, std::string>{"hard", "dispatched"}, {"topk", "all"}}) {
    INFO("selection " << selection << ", weights " << weights);
    torch::manual_seed(9);
    dirmoe::Config c = small_decoder_config("dirmoe");
    c.router.dirmoe.theta_mix = 0.0;  // no floor under θ: the normalisation sees raw Dirichlet draws
    c.router.dirmoe.selection = selection;
    c.router.dirmoe.weights = weights;
    c.validate();
    dirmoe::DirmoeRouterImpl router(c);
    {
      torch::NoGradGuard no_grad;
      router.gate->bias.fill_(-1e4);        // no expert is selected for any token
      router.alpha_hi->bias.fill_(-30.0);   // and the concentrations are tiny, so θ is often ~0
      router.alpha_lo->bias.fill_(-30.0);
    }
    const torch::Tensor x_TD = torch::randn({256, c.model.d_model}).requires_grad_(true);
    for (bool training : {true, false}) {
      INFO("training " << training);
      router.train(training);
      const auto out = router.forward(x_TD);
      CHECK(out.metrics.at("empty_selection").item<double>() == 256);
      CHECK(torch::equal(out.dispatch_mask_TE.sum(1), torch::ones({256}, torch::kLong)));
      CHECK(torch::isfinite(out.weights_TE).all().item<bool>());
      if (weights == "dispatched") {
        CHECK(torch::allclose(out.weights_TE.sum(1), torch::ones({256}), 1e-5, 1e-5));
      } else {  // the dispatched expert keeps its share of r, in (0, 1]
        CHECK((out.weights_TE.sum(1) > 0).all().item<bool>());
        CHECK((out.weights_TE.sum(1) <= 1.0 + 1e-6).all().item<bool>());
      }
      torch::Tensor total = out.weights_TE.square().sum();
      for (const auto& [name, loss] : out.aux_losses) {
        INFO(name);
        CHECK(std::isfinite(loss.item<double>()));
        total = total + loss;
      }
      router.zero_grad();
      if (x_TD.grad().defined()) x_TD.grad().zero_();
      total.backward();
      CHECK(torch::isfinite(x_TD.grad()).all().item<bool>());
      for (const auto& p : router.parameters()) {
        if (p.grad().defined()) CHECK(torch::isfinite(p.grad()).all().item<bool>());
      }
    }
  }
}
