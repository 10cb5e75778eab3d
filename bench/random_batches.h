#pragma once
// The benchmarks' data: uniform random token windows. Step speed does not depend on the text, and
// every rank of a multi-process benchmark draws the same global batch from the same seed, as the
// trainer's data does.
#include <cstdint>
#include <random>

#include <nlohmann/json.hpp>
#include <torch/torch.h>

#include "dirmoe/train/batch_source.h"

namespace dirmoe::bench {

class RandomBatches : public BatchSource {
 public:
  RandomBatches(int64_t vocab, int64_t seq_len, uint64_t seed) : vocab_(vocab), seq_len_(seq_len), gen_(seed) {}
  /// (batch_size, seq_len + 1) token ids in [0, vocab).
  torch::Tensor next_batch(int64_t batch_size) override {
    torch::Tensor t = torch::empty({batch_size, seq_len_ + 1}, torch::kInt64);
    int64_t* p = t.data_ptr<int64_t>();
    std::uniform_int_distribution<int64_t> pick(0, vocab_ - 1);
    for (int64_t i = 0; i < t.numel(); ++i) p[i] = pick(gen_);
    return t;
  }
  nlohmann::json state() const override { return nlohmann::json::object(); }
  void restore(const nlohmann::json&) override {}

 private:
  int64_t vocab_, seq_len_;
  std::mt19937_64 gen_;
};

}  // namespace dirmoe::bench
