#pragma once
// Built-in tasks made from the corpus's held-out documents, so a demo evaluates without any
// download. Both are plain text tasks scored by the same path as the users' tasks.
//   heldout_cloze  (LAMBADA-style): a passage of up to `context_words` words ending just before a
//                  purely alphabetic word of ≥ 3 letters; context = the passage, continuation =
//                  " " + that word; acc = greedy match, perplexity = exp(−mean LL).
//   heldout_choice: context = `context_words` words of a document; the true continuation (the
//                  next `continuation_words` words) among 4, the 3 distractors being spans of the
//                  same length from other documents of the same domain; acc and acc_norm.
// Every random choice comes from one std::mt19937_64 seeded with `seed` (positions drawn as
// raw() % n, which is the same on every platform), so a seed fixes the task.
#include <cstdint>
#include <string>
#include <vector>

#include "dirmoe/eval/task.h"

namespace dirmoe::eval {

/// One held-out document's text and its domain id.
struct HeldoutDocument {
  std::string text;
  int64_t domain = 0;
};

struct HeldoutTaskOptions {
  int64_t n_examples = 500;
  uint64_t seed = 1234;
  int64_t context_words = 64;
  int64_t continuation_words = 12;  // heldout_choice only
  // heldout_choice only: spans longer than this many characters (code, tables) are not used, so
  // that every choice fits the model's window (a BPE token covers at least one character or byte).
  int64_t max_continuation_chars = 80;
};

/// Throws DataError when the documents cannot give a single example.
Task build_heldout_cloze(const std::vector<HeldoutDocument>& docs, const HeldoutTaskOptions& options);
Task build_heldout_choice(const std::vector<HeldoutDocument>& docs, const HeldoutTaskOptions& options);

}  // namespace dirmoe::eval
