#include "dirmoe/eval/heldout_tasks.h"

#include <algorithm>
#include <map>
#include <random>

#include "dirmoe/core/error.h"

namespace dirmoe::eval {
namespace {

// A word: a maximal run of non-whitespace bytes. `space_before` says exactly one ' ' separates it
// from the previous word (so the text reads previous + " " + word).
struct Word {
  size_t begin = 0;
  size_t end = 0;
  bool space_before = false;
};

bool is_space(char c) { return c == ' ' || c == '\n' || c == '\t' || c == '\r' || c == '\v' || c == '\f'; }

std::vector<Word> split_words(const std::string& text) {
  std::vector<Word> words;
  size_t i = 0;
  while (i < text.size()) {
    while (i < text.size() && is_space(text[i])) ++i;
    if (i >= text.size()) break;
    Word w;
    w.begin = i;
    w.space_before = i > 1 && text[i - 1] == ' ' && !is_space(text[i - 2]);
    while (i < text.size() && !is_space(text[i])) ++i;
    w.end = i;
    words.push_back(w);
  }
  return words;
}

bool is_alpha_word(const std::string& text, const Word& w) {
  if (w.end - w.begin < 3) return false;
  for (size_t i = w.begin; i < w.end; ++i) {
    const char c = text[i];
    if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z'))) return false;
  }
  return true;
}

uint64_t draw(std::mt19937_64& rng, uint64_t n) { return rng() % n; }

struct IndexedDoc {
  const HeldoutDocument* doc;
  std::vector<Word> words;
};

std::vector<IndexedDoc> index_docs(const std::vector<HeldoutDocument>& docs) {
  std::vector<IndexedDoc> out;
  for (const auto& d : docs) out.push_back({&d, split_words(d.text)});
  return out;
}

/// The text of words [first, w) of a document, without the space before word w.
std::string words_before(const IndexedDoc& d, size_t first, size_t w) {
  return d.doc->text.substr(d.words[first].begin, d.words[w].begin - 1 - d.words[first].begin);
}

/// Calls make_doc(document, word) for min(n_examples, candidates) candidates drawn without
/// replacement by a seeded partial Fisher-Yates shuffle; make_doc may draw from the same rng.
template <typename MakeDoc>
void sample_candidates(std::vector<std::pair<size_t, size_t>>& candidates, int64_t n_examples, std::mt19937_64& rng,
                       MakeDoc&& make_doc) {
  const size_t n = std::min<size_t>(candidates.size(), static_cast<size_t>(std::max<int64_t>(1, n_examples)));
  for (size_t i = 0; i < n; ++i) {
    std::swap(candidates[i], candidates[i + draw(rng, candidates.size() - i)]);
    make_doc(candidates[i].first, candidates[i].second);
  }
}

}  // namespace

Task build_heldout_cloze(const std::vector<HeldoutDocument>& docs, const HeldoutTaskOptions& options) {
  Task task;
  task.name = "heldout_cloze";
  task.kind = TaskKind::kLogLikelihood;
  task.report_acc_norm = false;
  task.prompt_version = "dirmoe:heldout_cloze:1";
  task.prompt_format = "\"{up to " + std::to_string(options.context_words) +
                       " words of a held-out document}\" + \" {next word (alphabetic, >= 3 letters)}\"";
  task.source = "held-out split (seed " + std::to_string(options.seed) + ")";
  // candidate targets: (document, word index) with a single space before an alphabetic word
  const auto indexed = index_docs(docs);
  std::vector<std::pair<size_t, size_t>> candidates;
  for (size_t d = 0; d < indexed.size(); ++d) {
    const auto& words = indexed[d].words;
    for (size_t w = 8; w < words.size(); ++w) {  // at least 8 words of context
      if (words[w].space_before && is_alpha_word(indexed[d].doc->text, words[w])) candidates.push_back({d, w});
    }
  }
  if (candidates.empty()) throw DataError("heldout_cloze: the held-out documents hold no usable passage");
  std::mt19937_64 rng(options.seed);
  sample_candidates(candidates, options.n_examples, rng, [&](size_t d, size_t w) {
    const auto& words = indexed[d].words;
    const size_t first = w >= static_cast<size_t>(options.context_words) ? w - options.context_words : 0;
    TaskDoc doc;
    doc.requests.push_back({words_before(indexed[d], first, w),
                            " " + indexed[d].doc->text.substr(words[w].begin, words[w].end - words[w].begin)});
    doc.choice_chars.push_back(utf8_length(doc.requests[0].continuation));
    doc.doc_id = static_cast<int64_t>(task.docs.size());
    task.docs.push_back(std::move(doc));
  });
  return task;
}

Task build_heldout_choice(const std::vector<HeldoutDocument>& docs, const HeldoutTaskOptions& options) {
  Task task;
  task.name = "heldout_choice";
  task.kind = TaskKind::kMultipleChoice;
  task.report_acc_norm = true;
  task.prompt_version = "dirmoe:heldout_choice:2";
  task.prompt_format = "\"{" + std::to_string(options.context_words) + " words of a held-out document}\" + \" {next " +
                       std::to_string(options.continuation_words) +
                       " words, at most " + std::to_string(options.max_continuation_chars) + " characters}\" | 3 spans of other documents of the same domain";
  task.source = "held-out split (seed " + std::to_string(options.seed) + ")";
  const auto indexed = index_docs(docs);
  const size_t ctx_words = static_cast<size_t>(std::max<int64_t>(1, options.context_words));
  const size_t cont_words = static_cast<size_t>(std::max<int64_t>(1, options.continuation_words));
  const size_t max_chars = static_cast<size_t>(std::max<int64_t>(1, options.max_continuation_chars));
  // span start positions with a single space before them, per document
  auto starts = [&](const IndexedDoc& d, size_t min_start) {
    std::vector<size_t> s;
    for (size_t w = min_start; w + cont_words <= d.words.size(); ++w) {
      const size_t chars = d.words[w + cont_words - 1].end - d.words[w].begin;
      if (d.words[w].space_before && chars <= max_chars) s.push_back(w);
    }
    return s;
  };
  std::map<int64_t, std::vector<size_t>> docs_by_domain;  // documents that can give a distractor
  std::vector<std::vector<size_t>> span_starts(indexed.size());
  for (size_t d = 0; d < indexed.size(); ++d) {
    span_starts[d] = starts(indexed[d], 0);
    if (!span_starts[d].empty()) docs_by_domain[indexed[d].doc->domain].push_back(d);
  }
  std::vector<std::pair<size_t, size_t>> candidates;  // (document, first continuation word)
  for (size_t d = 0; d < indexed.size(); ++d) {
    if (docs_by_domain[indexed[d].doc->domain].size() < 2) continue;  // needs another document
    for (size_t w : starts(indexed[d], ctx_words)) candidates.push_back({d, w});
  }
  if (candidates.empty()) {
    throw DataError("heldout_choice: no domain has two held-out documents long enough for a " +
                    std::to_string(ctx_words) + "-word context and a " + std::to_string(cont_words) +
                    "-word continuation");
  }
  auto span = [&](size_t d, size_t w) {
    const auto& words = indexed[d].words;
    const std::string& text = indexed[d].doc->text;
    return text.substr(words[w].begin, words[w + cont_words - 1].end - words[w].begin);
  };
  std::mt19937_64 rng(options.seed);
  sample_candidates(candidates, options.n_examples, rng, [&](size_t d, size_t w) {
    const std::string context = words_before(indexed[d], w - ctx_words, w);
    std::vector<std::string> choices = {span(d, w)};
    const auto& pool = docs_by_domain[indexed[d].doc->domain];
    for (int k = 0; k < 3; ++k) {
      size_t other = d;
      while (other == d) other = pool[draw(rng, pool.size())];
      const auto& s = span_starts[other];
      choices.push_back(span(other, s[draw(rng, s.size())]));
    }
    // place the true continuation at a seeded position
    const size_t gold = draw(rng, choices.size());
    std::swap(choices[0], choices[gold]);
    TaskDoc doc;
    doc.gold = static_cast<int64_t>(gold);
    for (const auto& c : choices) {
      doc.requests.push_back({context, " " + c});
      doc.choice_chars.push_back(utf8_length(c));
    }
    doc.doc_id = static_cast<int64_t>(task.docs.size());
    task.docs.push_back(std::move(doc));
  });
  return task;
}

}  // namespace dirmoe::eval
