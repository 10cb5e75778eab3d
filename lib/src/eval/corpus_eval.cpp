#include "dirmoe/eval/corpus_eval.h"

#include <algorithm>

namespace dirmoe::eval {

std::vector<int64_t> TokenizerEncoder::encode(const std::string& text) const {
  const std::vector<int> ids = tokenizer_.encode(text);
  return std::vector<int64_t>(ids.begin(), ids.end());
}

int64_t TokenizerEncoder::prefix_token() const {
  return tokenizer_.eos_id() >= 0 ? tokenizer_.eos_id() : std::max(0, tokenizer_.bos_id());
}

std::vector<HeldoutDocument> decode_documents(const data::TokenSplit& split, const data::Tokenizer& tokenizer,
                                              int64_t max_docs, int64_t max_tokens_per_doc) {
  const int64_t n_docs = split.n_documents();
  const int64_t n = std::min(n_docs, max_docs);
  std::vector<HeldoutDocument> out;
  std::vector<int64_t> ids64;
  for (int64_t i = 0; i < n; ++i) {
    const int64_t d = n == n_docs ? i : i * n_docs / n;
    const int64_t begin = split.doc_begin(d);
    const int64_t len = std::min(split.doc_end(d) - begin, max_tokens_per_doc);
    if (len <= 0) continue;
    ids64.resize(len);
    split.copy_tokens(begin, len, ids64.data());
    std::vector<int> ids(ids64.begin(), ids64.end());
    out.push_back({tokenizer.decode(ids), split.doc_domain(d)});
  }
  return out;
}

std::vector<std::vector<int64_t>> split_windows(const data::TokenSplit& split, int64_t window, int64_t max_tokens) {
  std::vector<std::vector<int64_t>> out;
  const int64_t total = std::min(split.size(), max_tokens);
  for (int64_t start = 0; start + 2 <= total; start += window) {
    const int64_t len = std::min(window, total - start);
    std::vector<int64_t> w(len);
    split.copy_tokens(start, len, w.data());
    out.push_back(std::move(w));
  }
  return out;
}

}  // namespace dirmoe::eval
