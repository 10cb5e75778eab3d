#pragma once
// A LogLikelihoodScorer backed by a causal language model's logits: requests are sorted by
// input length (longest first, ties by request index, so batches are the same on every run),
// right-padded into batches of `batch_size` and scored under NoGradGuard. Right padding keeps
// each real token's logits independent of the padding in a causal model.
#include <cstdint>
#include <functional>

#include <torch/types.h>

#include "dirmoe/eval/loglikelihood_scorer.h"

namespace dirmoe::eval {

/// tokens_BT (B, T) int64 on the scorer's device → logits_BTV (B, T, V), any float dtype.
using LogitsFn = std::function<torch::Tensor(const torch::Tensor& tokens_BT)>;

class ModelScorer : public LogLikelihoodScorer {
 public:
  ModelScorer(LogitsFn logits_fn, int64_t max_length, int64_t batch_size, torch::Device device,
              int64_t pad_token = 0);

  std::vector<LogLikelihood> score(const std::vector<TokenizedRequest>& requests) override;
  int64_t max_length() const override { return max_length_; }

  void set_progress(ProgressFn progress) { progress_ = std::move(progress); }
  /// Input tokens fed to the model so far (padding excluded) and the seconds spent scoring.
  int64_t tokens_processed() const { return tokens_processed_; }
  double seconds() const { return seconds_; }

 private:
  LogitsFn logits_fn_;
  int64_t max_length_;
  int64_t batch_size_;
  torch::Device device_;
  int64_t pad_token_;
  ProgressFn progress_;
  int64_t tokens_processed_ = 0;
  double seconds_ = 0.0;
};

/// Mean next-token negative log-likelihood over `windows` (each a token sequence of ≥ 2 tokens;
/// every position but the first is predicted), batched like ModelScorer. Returns the total NLL
/// and the number of predicted tokens; perplexity = exp(nll / n).
struct SequenceNll {
  double nll = 0.0;
  int64_t n_tokens = 0;
};
SequenceNll sequence_nll(const LogitsFn& logits_fn, const std::vector<std::vector<int64_t>>& windows,
                         int64_t batch_size, torch::Device device, const ProgressFn& progress = {});

}  // namespace dirmoe::eval
