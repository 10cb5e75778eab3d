#pragma once
// Log-likelihood scoring of (context, continuation) requests the way lm-eval-harness does it:
//  1. tokenisation (encode_request): the context and continuation are encoded together and the
//     continuation's tokens are the suffix of encode(context + continuation) beyond
//     len(encode(context)); whitespace at the end of the context is moved to the front of the
//     continuation first; an empty context becomes the prefix token.
//  2. windowing (make_scoring_window): input = (context + continuation)[-(L+1):][:-1] (left
//     truncation to the model's window L); the last len(continuation) positions predict the
//     continuation.
//  3. score = Σ log p(continuation tokens), is_greedy = every continuation token is the argmax.
#include <cstdint>
#include <functional>
#include <string>
#include <vector>

#include "dirmoe/eval/task.h"

namespace dirmoe::eval {

/// Text → token ids. dirmoe's Tokenizer is adapted to it; tests use a fake.
class TextEncoder {
 public:
  virtual ~TextEncoder() = default;
  virtual std::vector<int64_t> encode(const std::string& text) const = 0;
  /// The token that stands for an empty context (the harness's EOT/BOS prefix token).
  virtual int64_t prefix_token() const = 0;
};

struct TokenizedRequest {
  std::vector<int64_t> context;
  std::vector<int64_t> continuation;
};

/// The harness's context/continuation split (step 1 above).
TokenizedRequest encode_request(const TextEncoder& encoder, const Request& request);

/// The model input for one request (step 2 above).
struct ScoringWindow {
  std::vector<int64_t> input;    // at most max_length tokens
  std::vector<int64_t> targets;  // the continuation tokens, predicted by the last targets.size() inputs
};
/// Throws dirmoe::Error if the continuation alone does not fit in the window or is empty.
ScoringWindow make_scoring_window(const TokenizedRequest& request, int64_t max_length);

/// Result of one request.
struct LogLikelihood {
  double sum = 0.0;        // Σ_t log p(continuation_t | prefix)
  bool is_greedy = false;  // every continuation token is the model's argmax
  int64_t n_tokens = 0;    // continuation tokens scored
};

/// Anything that can score tokenised requests; results come back in request order.
class LogLikelihoodScorer {
 public:
  virtual ~LogLikelihoodScorer() = default;
  virtual std::vector<LogLikelihood> score(const std::vector<TokenizedRequest>& requests) = 0;
  /// The model's window L used for left truncation.
  virtual int64_t max_length() const = 0;
};

/// Called with (done, total) requests as scoring advances.
using ProgressFn = std::function<void(int64_t done, int64_t total)>;

}  // namespace dirmoe::eval
