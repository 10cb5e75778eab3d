#pragma once
// Glue between the evaluation and the corpus: the SentencePiece tokenizer as a TextEncoder, the
// held-out documents as text for the built-in tasks, and validation windows for perplexity.
#include <cstdint>
#include <vector>

#include "dirmoe/data/shard_dataset.h"
#include "dirmoe/data/tokenizer.h"
#include "dirmoe/eval/heldout_tasks.h"
#include "dirmoe/eval/loglikelihood_scorer.h"

namespace dirmoe::eval {

/// data::Tokenizer as a TextEncoder. The empty-context prefix is EOS (the harness's EOT), or BOS
/// when the model has no EOS.
class TokenizerEncoder : public TextEncoder {
 public:
  explicit TokenizerEncoder(const data::Tokenizer& tokenizer) : tokenizer_(tokenizer) {}
  std::vector<int64_t> encode(const std::string& text) const override;
  int64_t prefix_token() const override;

 private:
  const data::Tokenizer& tokenizer_;
};

/// Decodes up to `max_docs` documents of `split` (evenly spaced over the split, so every domain
/// block is visited; each cut to its first `max_tokens_per_doc` tokens) back to text.
std::vector<HeldoutDocument> decode_documents(const data::TokenSplit& split, const data::Tokenizer& tokenizer,
                                              int64_t max_docs, int64_t max_tokens_per_doc);

/// Consecutive non-overlapping windows of `window` tokens from the start of `split`, covering at
/// most `max_tokens` tokens (a shorter last window is kept if it has ≥ 2 tokens).
std::vector<std::vector<int64_t>> split_windows(const data::TokenSplit& split, int64_t window, int64_t max_tokens);

}  // namespace dirmoe::eval
