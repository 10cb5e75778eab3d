// train_step with several processes (threads joined by Gloo, DistributedContext::in_process): each
// rank trains on its rows of the global batch with its noise keyed by their global token index, the
// routers' controllers see the mean of the ranks' measurements, and the step's routing figures are
// those of the global batch.
#include <unistd.h>

#include <exception>
#include <thread>
#include <vector>

#include <catch2/catch.hpp>
#include <torch/torch.h>

#include "dirmoe/train/optimizer.h"
#include "dirmoe/train/train_step.h"

using namespace dirmoe;

namespace {

constexpr int64_t kVocab = 16;

/// The same fixed batch at every draw: rows b hold tokens (b + t) mod V.
class FixedBatches : public BatchSource {
 public:
  torch::Tensor next_batch(int64_t batch_size) override {
    return (torch::arange(batch_size).unsqueeze(1) + torch::arange(9).unsqueeze(0)).remainder(kVocab);
  }
  nlohmann::json state() const override { return nlohmann::json::object(); }
  void restore(const nlohmann::json&) override {}
};

/// An embedding LM whose routing figures and controller measurement depend on the rank.
class RankModel : public TrainableModel {
 public:
  explicit RankModel(int64_t rank) : rank_(rank) {
    torch::manual_seed(3);
    net_ = std::make_shared<torch::nn::Module>();
    emb = net_->register_parameter("emb", torch::randn({kVocab, kVocab}) * 0.1);
  }
  torch::nn::Module& module() override { return *net_; }
  DecoderOutput forward(const torch::Tensor& tokens_BT) override {
    first_tokens.push_back(tokens_BT.select(1, 0).clone());
    DecoderOutput out;
    out.logits_BTV = torch::embedding(emb, tokens_BT);
    LayerRoutingMetrics m;
    m.active_experts = torch::full({}, 1.0 + static_cast<double>(rank_));          // ranks 1, 2: mean 1.5
    m.tokens_per_expert_E = torch::tensor({rank_, 10 * rank_ + 1}, torch::kInt64);  // sum (1, 12)
    m.dropped_tokens = torch::full({}, static_cast<double>(rank_));
    out.layers.push_back(m);
    return out;
  }
  void set_noise_key(const RouterNoiseKey& key) override { keys.push_back(key); }
  std::vector<torch::Tensor> controller_measurements() const override {
    return {torch::full({}, 2.0 + 4.0 * static_cast<double>(rank_), torch::kFloat64), torch::Tensor()};
  }
  void set_controller_measurements(const std::vector<torch::Tensor>& means) override { received = means; }

  torch::Tensor emb;
  std::vector<RouterNoiseKey> keys;
  std::vector<torch::Tensor> first_tokens;
  std::vector<torch::Tensor> received;

 private:
  int64_t rank_;
  std::shared_ptr<torch::nn::Module> net_;
};

}  // namespace

TEST_CASE("train_step over two processes: rows, noise keys, controllers and routing figures", "[train][train_step]") {
  const int64_t W = 2, B = 3, A = 2, T = 8;
  std::vector<std::unique_ptr<RankModel>> models;
  for (int64_t r = 0; r < W; ++r) models.push_back(std::make_unique<RankModel>(r));
  std::vector<TrainStepResult> results(W);
  std::vector<std::exception_ptr> errors(W);
  const std::string name = "train_step_" + std::to_string(::getpid());
  std::vector<std::thread> threads;
  for (int64_t r = 0; r < W; ++r) {
    threads.emplace_back([&, r] {
      try {
        auto world = DistributedContext::in_process(name, r, W);
        RankModel& model = *models[r];
        TrainConfig tc;
        auto opt = make_optimizer(model.module(), tc);
        FixedBatches source;
        TrainStepOptions o;
        o.batch_size = B;
        o.grad_accum = A;
        o.seq_len = T;
        o.seed = 99;
        results[r] = train_step(/*step_index=*/5, model, *opt, model.module().parameters(), source, *world, o);
      } catch (...) {
        errors[r] = std::current_exception();
      }
    });
  }
  for (auto& t : threads) t.join();
  for (auto& e : errors) {
    if (e) std::rethrow_exception(e);
  }
  for (int64_t r = 0; r < W; ++r) {
    INFO("rank " << r);
    const RankModel& m = *models[r];
    REQUIRE(m.keys.size() == static_cast<size_t>(A));
    for (int64_t micro = 0; micro < A; ++micro) {
      CHECK(m.keys[micro].seed == 99);
      CHECK(m.keys[micro].draw == 5 * A + micro);
      CHECK(m.keys[micro].token_offset == r * B * T);  // rows r·B.. of the global batch of W·B
      CHECK(torch::equal(m.first_tokens[micro], torch::arange(r * B, r * B + B)));
    }
    REQUIRE(m.received.size() == 2);
    CHECK(m.received[0].item<double>() == Approx(4.0));  // mean of 2 and 6
    CHECK_FALSE(m.received[1].defined());
    const TrainStepResult& res = results[r];
    CHECK(res.active_experts_L[0].item<double>() == Approx(1.5));
    CHECK(res.dropped_L[0].item<double>() == Approx(2.0));  // 0 + 1 per micro-batch, summed over 2
    CHECK(torch::allclose(res.tokens_per_expert_L[0], torch::tensor({2.0f, 24.0f})));  // (1, 12) per micro-batch
  }
}
