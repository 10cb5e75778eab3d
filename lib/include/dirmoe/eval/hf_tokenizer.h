#pragma once
// The tokenizer of an exported checkpoint in Hugging Face's format (tokenizers' tokenizer.json and
// transformers' tokenizer_config.json), so that AutoTokenizer.from_pretrained(DIR) encodes text
// exactly as dirmoe's SentencePiece BPE model does (docs/export.md "Tokenizer").
//
// How SentencePiece BPE encodes (bpe_model.cc) and how the JSON reproduces it:
//   normaliser   identity rule, spaces escaped as "▁", no dummy prefix, whitespace kept
//                → a Replace(" " → "▁") normaliser and NO pre-tokeniser: the whole text is one
//                  symbol sequence, as SentencePiece's encoder sees it;
//   merges       repeatedly merge the adjacent pair whose concatenation is the highest-scored
//                piece (ties: leftmost) → a BPE model whose merges are every split (l, r) of a
//                piece into two pieces, ranked by the piece's score (highest first);
//   byte fallback a character outside the vocabulary becomes its UTF-8 bytes <0xXX>
//                → byte_fallback = true;
//   control ids  <unk>, <s>, </s> are never produced from text and never added
//                → special added tokens that the text cannot spell (split_special_tokens) and
//                  no post-processor (no BOS/EOS unless the caller asks).
// NOTE: one corner is not expressible: two different splits of the same piece that overlap
// (symbols "ab","a","ba" → "aba") are tied in SentencePiece (leftmost wins) but ranked apart here.
// tests/cli/test_export_hf.sh counts agreement on whole corpora (docs/export.md has the figures).
#include <nlohmann/json.hpp>

#include "dirmoe/data/tokenizer.h"

namespace dirmoe::eval {

/// tokenizer.json for `tokenizer`. Throws Error when the SentencePiece model uses a feature the
/// JSON above cannot express (a normaliser other than identity, a dummy prefix, collapsed
/// whitespace, unused pieces), naming the model file.
nlohmann::json hf_tokenizer_json(const data::Tokenizer& tokenizer);

/// tokenizer_config.json: the generic fast tokenizer over tokenizer.json, its special tokens (EOS
/// and UNK; no BOS, which dirmoe's models never see), nothing added by default (add_eos_token=True
/// when loading asks for EOS), `model_max_length` = the model's window.
nlohmann::json hf_tokenizer_config_json(const data::Tokenizer& tokenizer, int64_t model_max_length);

}  // namespace dirmoe::eval
