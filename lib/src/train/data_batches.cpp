#include "dirmoe/train/data_batches.h"

#include <filesystem>

#include <fmt/format.h>
#include <torch/torch.h>

#include "dirmoe/core/error.h"
#include "dirmoe/data/shard_dataset.h"
#include "dirmoe/data/window_sampler.h"

namespace dirmoe {
namespace {

/// The training split's seeded window stream as a BatchSource.
class WindowBatchSource : public BatchSource {
 public:
  WindowBatchSource(const data::TokenSplit& split, int64_t seq_len, uint64_t seed,
                    const std::map<std::string, double>& domain_weights)
      : sampler_(split, seq_len, seed, domain_weights, /*rank=*/0) {}
  torch::Tensor next_batch(int64_t batch_size) override { return sampler_.next_batch(batch_size); }
  nlohmann::json state() const override { return sampler_.state(); }
  void restore(const nlohmann::json& state) override { sampler_.restore(state); }

 private:
  data::WindowSampler sampler_;
};

// NOTE: validation windows come from their own stream (a fixed offset from the training seed), drawn
// once: every evaluation of a run, and every run with the same seed, scores the same windows.
constexpr uint64_t kValidationSeedOffset = 0x76616c6964ULL;  // "valid"

}  // namespace

TrainingData open_training_data(Config& config, int64_t processes) {
  const std::filesystem::path dir(config.data.dir);
  if (!std::filesystem::exists(dir / "manifest.json")) {
    throw DataError(fmt::format("data.dir = \"{}\": no token shards there (manifest.json is missing). Build them "
                                "with `dirmoe-data build --out {}` (or point data.dir at a built directory)",
                                dir.string(), dir.string()));
  }
  data::ShardDataset dataset(dir.string());
  if (config.model.vocab_size == 0) {
    config.model.vocab_size = dataset.vocab_size();
  } else if (config.model.vocab_size < dataset.vocab_size()) {
    throw ConfigError(fmt::format("model.vocab_size = {} is smaller than the tokenizer's {} in {}; set it to 0 to "
                                  "take the data's",
                                  config.model.vocab_size, dataset.vocab_size(), dir.string()));
  }
  const int64_t seq_len = config.model.seq_len;
  TrainingData out;
  out.train = std::make_unique<WindowBatchSource>(dataset.split("train"), seq_len, config.train.seed,
                                                  config.data.domain_weights);
  if (config.train.eval_every > 0 && config.train.eval_batches > 0) {
    data::WindowSampler validation(dataset.split("validation"), seq_len, config.train.seed + kValidationSeedOffset);
    for (int64_t i = 0; i < config.train.eval_batches; ++i) {
      out.validation.push_back(validation.next_batch(config.train.batch_size * processes));
    }
  }
  return out;
}

}  // namespace dirmoe
