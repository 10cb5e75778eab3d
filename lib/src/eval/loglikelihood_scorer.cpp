#include "dirmoe/eval/loglikelihood_scorer.h"

#include "dirmoe/core/error.h"

namespace dirmoe::eval {

TokenizedRequest encode_request(const TextEncoder& encoder, const Request& request) {
  TokenizedRequest out;
  if (request.context.empty()) {  // checked before the whitespace move, as the harness does
    out.context = {encoder.prefix_token()};
    out.continuation = encoder.encode(request.continuation);
    return out;
  }
  std::string context = request.context;
  std::string continuation = request.continuation;
  // Trailing whitespace of the context belongs to the continuation (Python's rstrip whitespace).
  size_t keep = context.size();
  while (keep > 0 && std::string(" \t\n\r\v\f").find(context[keep - 1]) != std::string::npos) --keep;
  if (keep < context.size()) {
    continuation = context.substr(keep) + continuation;
    context.resize(keep);
  }
  // a context of only whitespace encodes to no tokens: the whole joint encoding is the continuation
  const std::vector<int64_t> whole = encoder.encode(context + continuation);
  out.context = context.empty() ? std::vector<int64_t>{} : encoder.encode(context);
  const size_t n_context = std::min(out.context.size(), whole.size());
  out.continuation.assign(whole.begin() + static_cast<std::ptrdiff_t>(n_context), whole.end());
  // NOTE: as in the harness, the context tokens kept are encode(context); the model input is
  // encode(context) + the suffix of the joint encoding.
  return out;
}

ScoringWindow make_scoring_window(const TokenizedRequest& request, int64_t max_length) {
  const int64_t n_cont = static_cast<int64_t>(request.continuation.size());
  if (n_cont == 0) throw Error("eval: a continuation encodes to no tokens (nothing to score)");
  if (request.context.empty()) throw Error("eval: a context of only whitespace leaves no token to predict from");
  if (n_cont > max_length) {
    throw Error("eval: a continuation of " + std::to_string(n_cont) + " tokens does not fit the model's window of " +
                std::to_string(max_length) + " tokens");
  }
  std::vector<int64_t> all = request.context;
  all.insert(all.end(), request.continuation.begin(), request.continuation.end());
  // (context + continuation)[-(L+1):][:-1]
  const int64_t n_all = static_cast<int64_t>(all.size());
  const int64_t begin = std::max<int64_t>(0, n_all - (max_length + 1));
  ScoringWindow window;
  window.input.assign(all.begin() + begin, all.end() - 1);
  window.targets = request.continuation;
  return window;
}

}  // namespace dirmoe::eval
