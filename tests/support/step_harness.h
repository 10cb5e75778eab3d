#pragma once
// A small decoder with its optimiser, stepped by dirmoe::train_step exactly as the trainer does:
// the tests that compare one step under two settings (bf16 autocast and fp32, CUDA and CPU, with
// and without a process group) build two harnesses from the same seed and feed them the same
// batches.
// NOTE: torch before Catch in the files that include this: c10 defines a glog-style CHECK macro.
#include <algorithm>
#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include <torch/torch.h>

#include "dirmoe/config/config.h"
#include "dirmoe/model/decoder.h"
#include "dirmoe/train/batch_source.h"
#include "dirmoe/train/distributed.h"
#include "dirmoe/train/optimizer.h"
#include "dirmoe/train/train_step.h"
#include "dirmoe/train/trainable_model.h"

namespace dirmoe::testing {

/// A decoder small enough for a CPU test and large enough for every kernel to matter:
/// D=64, 2 layers, 4 heads / 2 KV, d_ff 128, E=8, k=1, seq 32, vocab 256.
inline Config step_test_config(const std::string& router) {
  Config c;
  c.model.vocab_size = 256;
  c.model.d_model = 64;
  c.model.n_layers = 2;
  c.model.n_heads = 4;
  c.model.n_kv_heads = 2;
  c.model.d_ff = 128;
  c.model.seq_len = 32;
  c.model.n_experts = 8;
  c.model.n_experts_active = 1;
  c.model.init_std = 0.02;
  c.router.type = router;
  c.train.batch_size = 4;
  c.train.seed = 7;
  return c;
}

/// The same seeded random windows for every harness: draw i comes from generator seed 100 + i, or
/// with `repeat` every draw is draw 0 (a batch the model can learn in a few steps).
class SeededBatches : public BatchSource {
 public:
  SeededBatches(int64_t vocab, int64_t seq_len, bool repeat = false)
      : vocab_(vocab), seq_len_(seq_len), repeat_(repeat) {}
  torch::Tensor next_batch(int64_t batch_size) override {
    const uint64_t i = repeat_ ? 0 : static_cast<uint64_t>(draws_);
    ++draws_;
    torch::Generator gen = at::detail::createCPUGenerator(/*seed_in=*/100 + i);
    return torch::randint(vocab_, {batch_size, seq_len_ + 1}, gen, torch::kInt64);
  }
  nlohmann::json state() const override { return {{"draws", draws_}}; }
  void restore(const nlohmann::json& s) override { draws_ = s.at("draws").get<int64_t>(); }

 private:
  int64_t vocab_, seq_len_;
  bool repeat_;
  int64_t draws_ = 0;
};

/// Model (initialised from config.train.seed on the CPU, then moved), optimiser and batches.
struct StepHarness {
  Config config;
  torch::Device device;
  std::shared_ptr<TrainableModel> model;
  std::unique_ptr<torch::optim::AdamW> optimizer;
  std::vector<torch::Tensor> params;
  SeededBatches batches;
  int64_t step = 0;

  StepHarness(const Config& c, const torch::Device& d, bool repeat_batch = false)
      : config(c), device(d), batches(c.model.vocab_size, c.model.seq_len, repeat_batch) {
    torch::manual_seed(config.train.seed);
    Decoder decoder(config);
    model = make_trainable(decoder);
    model->module().to(device);
    model->module().train();
    optimizer = make_optimizer(model->module(), config.train);
    for (auto& p : model->module().parameters()) {
      if (p.requires_grad()) params.push_back(p);
    }
  }

  /// One optimiser step; `bf16` turns on CUDA autocast.
  TrainStepResult run(DistributedContext& dist, bool bf16 = false) {
    TrainStepOptions o;
    o.batch_size = config.train.batch_size;
    o.seq_len = config.model.seq_len;
    o.lr = 1e-3;
    o.grad_clip = config.train.grad_clip;
    o.bf16 = bf16;
    o.device = device;
    // Routers that sample (DirMoE's noise, ReMoE's none) draw from the global generator: seed it
    // per step so that two harnesses see the same draws on the same device type.
    torch::manual_seed(1000 + static_cast<uint64_t>(step));
    return train_step(step++, *model, *optimizer, params, batches, dist, o);
  }

  /// Every parameter, flattened and concatenated on the CPU in float64.
  torch::Tensor flat_parameters() const {
    std::vector<torch::Tensor> parts;
    for (const auto& p : params) parts.push_back(p.detach().to(torch::kCPU, torch::kFloat64).reshape({-1}));
    return torch::cat(parts);
  }
};

/// ‖a − b‖ / max(‖b‖, floor) over all elements, in float64 on the CPU (b is the reference; the
/// floor keeps a reference that is all but zero from turning rounding noise into a large ratio).
inline double relative_error(const torch::Tensor& a, const torch::Tensor& b, double floor = 1e-30) {
  const torch::Tensor a64 = a.detach().to(torch::kCPU, torch::kFloat64);
  const torch::Tensor b64 = b.detach().to(torch::kCPU, torch::kFloat64);
  return (a64 - b64).norm().item<double>() / std::max(b64.norm().item<double>(), floor);
}

}  // namespace dirmoe::testing
