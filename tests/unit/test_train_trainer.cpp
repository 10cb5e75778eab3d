// The training loop on a stand-in model (an embedding LM with a fake router): the loss goes down,
// a resumed run continues bit-identically, a NaN aux loss stops the run naming the term, the
// parity flag reaches summary.json.
#include <catch2/catch.hpp>
#include <torch/torch.h>

#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <random>
#include <sstream>

#include "dirmoe/core/atomic_file.h"
#include "dirmoe/train/checkpoint.h"
#include "dirmoe/train/trainer.h"
#include "../support/test_files.h"

namespace fs = std::filesystem;

namespace {

constexpr int64_t kVocab = 32;

/// Windows of a fixed periodic token stream at seeded random offsets: learnable, resumable.
class PatternSource : public dirmoe::BatchSource {
 public:
  PatternSource(int64_t seq_len, uint64_t seed) : seq_len_(seq_len), seed_(seed) {}
  torch::Tensor next_batch(int64_t batch_size) override {
    std::mt19937_64 rng(seed_ * 7919 + static_cast<uint64_t>(draws_++));
    torch::Tensor out = torch::empty({batch_size, seq_len_ + 1}, torch::kInt64);
    auto a = out.accessor<int64_t, 2>();
    for (int64_t b = 0; b < batch_size; ++b) {
      const int64_t start = static_cast<int64_t>(rng() % 1000);
      for (int64_t t = 0; t <= seq_len_; ++t) a[b][t] = ((start + t) * 5) % kVocab;
    }
    return out;
  }
  nlohmann::json state() const override { return {{"draws", draws_}}; }
  void restore(const nlohmann::json& s) override { draws_ = s.at("draws").get<int64_t>(); }

 private:
  int64_t seq_len_;
  uint64_t seed_;
  int64_t draws_ = 0;
};

struct StandInImpl : torch::nn::Module {
  StandInImpl() {
    emb = register_module("emb", torch::nn::Embedding(kVocab, 16));
    head = register_module("head", torch::nn::Linear(torch::nn::LinearOptions(16, kVocab).bias(false)));
    gain = register_parameter("gain", torch::ones({16}));
    lambda = register_buffer("lambda", torch::ones({1}));
  }
  torch::nn::Embedding emb{nullptr};
  torch::nn::Linear head{nullptr};
  torch::Tensor gain;    // (16)
  torch::Tensor lambda;  // (1) a controller, like ReMoE's λ
};

class StandIn : public dirmoe::TrainableModel {
 public:
  StandIn(int64_t n_layers, double measured_k, int64_t nan_from_step = -1)
      : n_layers_(n_layers), measured_k_(measured_k), nan_from_(nan_from_step) {
    torch::manual_seed(11);
    net_ = std::make_shared<StandInImpl>();
  }
  torch::nn::Module& module() override { return *net_; }
  dirmoe::DecoderOutput forward(const torch::Tensor& tokens_BT) override {
    torch::Tensor x_BTD = net_->emb(tokens_BT) * net_->gain;
    if (net_->is_training()) x_BTD = x_BTD + 0.01 * torch::randn_like(x_BTD);  // router-like noise
    dirmoe::DecoderOutput out;
    out.logits_BTV = net_->head(x_BTD);
    torch::Tensor aux = 1e-3 * x_BTD.pow(2).mean();
    if (nan_from_ >= 0 && step_ >= nan_from_) aux = aux * std::numeric_limits<float>::quiet_NaN();
    out.aux_losses["balance"] = aux;
    for (int64_t l = 0; l < n_layers_; ++l) {
      dirmoe::LayerRoutingMetrics m;
      m.active_experts = torch::full({}, measured_k_);
      m.tokens_per_expert_E = torch::tensor({10, 20, 30, 40}, torch::kInt64);
      m.dropped_tokens = torch::zeros({});
      m.router_metrics["lambda"] = net_->lambda.detach().reshape({});
      out.layers.push_back(m);
    }
    return out;
  }
  void set_step(int64_t step) override { step_ = step; }
  void update_controllers() override {
    torch::NoGradGuard g;
    net_->lambda.mul_(1.01);
  }
  std::optional<double> flops_per_token(const std::vector<double>& k) const override {
    double sum = 0;
    for (double v : k) sum += v;
    return 1000.0 + 100.0 * sum / static_cast<double>(k.size());
  }

 private:
  std::shared_ptr<StandInImpl> net_;
  int64_t n_layers_;
  double measured_k_;
  int64_t nan_from_;
  int64_t step_ = 0;
};

dirmoe::Config tiny_config(int64_t max_steps) {
  dirmoe::Config c;
  c.model.n_layers = 2;
  c.model.n_experts = 4;
  c.model.n_experts_active = 1;
  c.model.seq_len = 16;
  c.train.device = "cpu";
  c.train.threads = 1;
  c.train.batch_size = 4;
  c.train.grad_accum = 2;
  c.train.max_steps = max_steps;
  c.train.lr = 3e-2;
  c.train.lr_min = 3e-3;
  c.train.warmup_frac = 0.1;
  c.train.log_every = 1;
  c.train.eval_every = 5;
  c.train.ckpt_every = 5;
  c.train.keep_last = 2;
  return c;
}

std::vector<torch::Tensor> val_batches() {
  PatternSource src(16, 99);
  return {src.next_batch(4), src.next_batch(4)};
}

std::vector<nlohmann::json> read_metrics(const fs::path& dir) {
  std::istringstream in(dirmoe::read_file(dir / "metrics.jsonl"));
  std::vector<nlohmann::json> out;
  std::string line;
  while (std::getline(in, line)) out.push_back(nlohmann::json::parse(line));
  return out;
}

dirmoe::TrainResult train(const dirmoe::Config& c, const fs::path& dir, bool resume,
                          std::shared_ptr<dirmoe::TrainableModel> model = nullptr) {
  if (!model) model = std::make_shared<StandIn>(c.model.n_layers, 1.0);
  std::ostringstream log;
  dirmoe::TrainerIo io;
  io.out_dir = dir;
  io.resume = resume;
  io.log = &log;
  dirmoe::Trainer trainer(c, model, std::make_unique<PatternSource>(c.model.seq_len, c.train.seed),
                          val_batches(), io);
  return trainer.run();
}

}  // namespace

TEST_CASE("trainer: loss goes down, metrics and summary are written", "[train][trainer]") {
  const fs::path dir = dirmoe::testing::fresh_test_dir("trainer_down");
  const auto result = train(tiny_config(30), dir, false);
  CHECK(result.status == "finished");
  const auto lines = read_metrics(dir);
  REQUIRE(lines.size() == 30);
  const double first = lines.front()["lm_loss"].get<double>();
  const double last = lines.back()["lm_loss"].get<double>();
  CHECK(first > 3.0);          // ≈ log(32) at the start
  CHECK(last < 0.5 * first);   // the pattern is learnable
  CHECK(lines.back()["tokens"] == 30 * 4 * 2 * 16);
  CHECK(lines.back()["aux_losses"].contains("balance"));
  CHECK(lines.back()["layers"].size() == 2);
  // load CV of counts {10,20,30,40} summed over 2 micro-batches: std/mean = sqrt(125)/25
  CHECK(lines.back()["layers"][0]["load_cv"].get<double>() == Approx(std::sqrt(125.0) / 25.0).epsilon(1e-5));
  CHECK(lines.back()["router_metrics"]["lambda"].get<double>() == Approx(std::pow(1.01, 29)).epsilon(1e-5));
  CHECK(lines.back()["flops_per_token"].get<double>() == Approx(1100.0));
  CHECK(lines[4].contains("val_loss"));
  const auto summary = nlohmann::json::parse(dirmoe::read_file(dir / "summary.json"));
  CHECK(summary["parity"]["ok"] == true);
  CHECK(summary["parity"]["steps_measured"] == 27);  // 30 steps − 3 warm-up
  CHECK(summary["parity"]["total_flops"].get<double>() == Approx(1100.0 * 30 * 128));
  CHECK(summary["best_val_loss"].get<double>() < first);
  CHECK(fs::exists(dir / "checkpoints" / "best.ckpt"));
  CHECK(dirmoe::list_step_checkpoints(dir / "checkpoints").size() == 2);  // keep_last
  fs::remove_all(dir);
}

TEST_CASE("trainer: resume continues bit-identically", "[train][trainer]") {
  const fs::path full = dirmoe::testing::fresh_test_dir("trainer_full");
  const fs::path split = dirmoe::testing::fresh_test_dir("trainer_split");
  train(tiny_config(14), full, false);
  // The interrupted run: the same 14-step config, stopped after step 10 (the stop flag is how a
  // SIGTERM arrives), which writes a checkpoint; then a resume in a fresh model and RNG state.
  auto c = tiny_config(14);
  std::atomic<bool> stop{false};
  {
    struct StopAt10 : StandIn {
      StopAt10(std::atomic<bool>* f) : StandIn(2, 1.0), flag(f) {}
      void set_step(int64_t s) override {
        StandIn::set_step(s);
        if (s == 9) flag->store(true);
      }
      std::atomic<bool>* flag;
    };
    std::ostringstream log;
    dirmoe::TrainerIo io;
    io.out_dir = split;
    io.log = &log;
    io.stop_requested = &stop;
    dirmoe::Trainer t(c, std::make_shared<StopAt10>(&stop), std::make_unique<PatternSource>(16, c.train.seed),
                      val_batches(), io);
    const auto r = t.run();
    CHECK(r.status == "stopped");
    CHECK(r.steps_done == 10);
  }
  {
    std::ofstream append(split / "metrics.jsonl", std::ios::app);
    append << R"({"step": 11, "loss": 123})" << "\n" << R"({"step": 12, "lo)";
  }
  torch::manual_seed(12345);  // a different RNG state before resuming: the checkpoint must restore it
  train(c, split, true);
  const auto a = read_metrics(full);
  const auto b = read_metrics(split);
  REQUIRE(a.size() == 14);
  REQUIRE(b.size() == 14);
  for (size_t i = 0; i < a.size(); ++i) {
    INFO("step " << a[i]["step"]);
    CHECK(a[i]["step"] == b[i]["step"]);
    CHECK(a[i]["loss"].get<double>() == b[i]["loss"].get<double>());  // bit-identical
    CHECK(a[i]["grad_norm"].get<double>() == b[i]["grad_norm"].get<double>());
    CHECK(a[i]["router_metrics"] == b[i]["router_metrics"]);
  }
  const auto sa = nlohmann::json::parse(dirmoe::read_file(full / "summary.json"));
  const auto sb = nlohmann::json::parse(dirmoe::read_file(split / "summary.json"));
  CHECK(sa["final_val_loss"].get<double>() == sb["final_val_loss"].get<double>());
  CHECK(sa["parity"]["layers"] == sb["parity"]["layers"]);
  fs::remove_all(full);
  fs::remove_all(split);
}

TEST_CASE("trainer: a NaN aux loss stops the run naming the term", "[train][trainer]") {
  const fs::path dir = dirmoe::testing::fresh_test_dir("trainer_nan");
  auto c = tiny_config(20);
  c.train.log_every = 4;
  c.train.ckpt_every = 4;
  c.train.eval_every = 0;
  std::string message;
  try {
    train(c, dir, false, std::make_shared<StandIn>(2, 1.0, /*nan_from_step=*/5));
  } catch (const dirmoe::TrainingDiverged& e) {
    message = e.what();
  }
  CHECK_THAT(message, Catch::Contains("'aux/balance'") && Catch::Contains("at step 6") &&
                          Catch::Contains("step_00000004.ckpt"));
  // The last checkpoint is the good one from step 4; nothing was written from the bad state.
  const auto steps = dirmoe::list_step_checkpoints(dir / "checkpoints");
  REQUIRE(steps.size() == 1);
  CHECK(steps.back().filename() == "step_00000004.ckpt");
  const auto summary = nlohmann::json::parse(dirmoe::read_file(dir / "summary.json"));
  CHECK(summary["status"] == "diverged");
  fs::remove_all(dir);
}

TEST_CASE("trainer: measured E[k] off target flags parity in summary.json", "[train][trainer]") {
  const fs::path dir = dirmoe::testing::fresh_test_dir("trainer_parity");
  auto c = tiny_config(6);
  c.train.eval_every = 0;
  train(c, dir, false, std::make_shared<StandIn>(2, 1.2));
  const auto summary = nlohmann::json::parse(dirmoe::read_file(dir / "summary.json"));
  CHECK(summary["parity"]["ok"] == false);
  CHECK(summary["parity"]["flagged_layers"] == nlohmann::json::array({0, 1}));
  CHECK(summary["parity"]["layers"][0]["mean_active_experts"].get<double>() == Approx(1.2));
  fs::remove_all(dir);
}
