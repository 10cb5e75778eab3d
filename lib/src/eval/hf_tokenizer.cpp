#include "dirmoe/eval/hf_tokenizer.h"

#include <algorithm>
#include <map>
#include <string>
#include <tuple>
#include <vector>

#include "dirmoe/core/error.h"

namespace dirmoe::eval {
namespace {

const char* const kSpaceSymbol = "\xe2\x96\x81";  // "▁", SentencePiece's escaped space

/// Length of the UTF-8 sequence starting with byte `c` (1 for a stray continuation byte).
size_t utf8_char_length(unsigned char c) {
  if (c >= 0xF0) return 4;
  if (c >= 0xE0) return 3;
  if (c >= 0xC0) return 2;
  return 1;
}

std::string joined(const data::Tokenizer& tokenizer, const std::vector<int>& ids) {
  std::string s;
  for (int id : ids) s += tokenizer.piece(id) + "|";
  return s;
}

/// Refuses models whose encoding the JSON cannot reproduce (see the header).
void check_expressible(const data::Tokenizer& tokenizer) {
  const std::string where = tokenizer.path() + ": ";
  for (int id = 0; id < tokenizer.vocab_size(); ++id) {
    if (tokenizer.piece_kind(id) == data::Tokenizer::PieceKind::kUnused) {
      throw Error(where + "the SentencePiece model has unused pieces (\"" + tokenizer.piece(id) +
                  "\"), which tokenizer.json cannot express; the tokenizer.model copy is still usable");
    }
  }
  const std::vector<int> a = tokenizer.encode("a");
  if (!a.empty() && tokenizer.piece(a.front()).rfind(kSpaceSymbol, 0) == 0) {
    throw Error(where + "the SentencePiece model adds a dummy prefix (\"a\" encodes as " + joined(tokenizer, a) +
                "); tokenizer.json is written for models trained by dirmoe-data (add_dummy_prefix=false)");
  }
  for (const std::string probe : {"a  b \n\t c ", "\xef\xac\x81 \xe2\x85\xa0"}) {  // whitespace runs; ﬁ Ⅰ (NFKC would fold them)
    if (tokenizer.decode(tokenizer.encode(probe)) != probe) {
      throw Error(where + "the SentencePiece model normalises its input (whitespace or Unicode); tokenizer.json is "
                  "written for the identity normaliser of models trained by dirmoe-data");
    }
  }
}

}  // namespace

nlohmann::json hf_tokenizer_json(const data::Tokenizer& tokenizer) {
  check_expressible(tokenizer);
  const int n = static_cast<int>(tokenizer.vocab_size());
  using Kind = data::Tokenizer::PieceKind;

  nlohmann::json vocab = nlohmann::json::object();
  nlohmann::json added = nlohmann::json::array();
  std::map<std::string, int> mergeable;  // pieces that BPE merges may form or consume
  bool has_bytes = false;
  for (int id = 0; id < n; ++id) {
    const std::string piece = tokenizer.piece(id);
    vocab[piece] = id;
    const Kind kind = tokenizer.piece_kind(id);
    if (kind == Kind::kUnknown || kind == Kind::kControl) {
      added.push_back({{"id", id}, {"content", piece}, {"single_word", false}, {"lstrip", false},
                       {"rstrip", false}, {"normalized", false}, {"special", true}});
    } else if (kind == Kind::kByte) {
      has_bytes = true;
    } else {
      mergeable.emplace(piece, id);
    }
  }

  // Every split of a piece into two pieces is a merge; rank = the piece's priority (score
  // descending, then id), splits of one piece left to right.
  struct Merge {
    float score;
    int id;
    size_t split;
    std::string left, right;
  };
  std::vector<Merge> merges;
  for (const auto& [piece, id] : mergeable) {
    for (size_t k = utf8_char_length(static_cast<unsigned char>(piece[0])); k < piece.size();
         k += utf8_char_length(static_cast<unsigned char>(piece[k]))) {
      const std::string left = piece.substr(0, k), right = piece.substr(k);
      if (mergeable.count(left) && mergeable.count(right)) merges.push_back({tokenizer.score(id), id, k, left, right});
    }
  }
  std::sort(merges.begin(), merges.end(), [](const Merge& a, const Merge& b) {
    return std::tie(b.score, a.id, a.split) < std::tie(a.score, b.id, b.split);
  });
  nlohmann::json merge_list = nlohmann::json::array();
  for (const auto& m : merges) merge_list.push_back({m.left, m.right});

  const int unk = tokenizer.unk_id();
  nlohmann::json j;
  j["version"] = "1.0";
  j["truncation"] = nullptr;
  j["padding"] = nullptr;
  j["added_tokens"] = added;
  j["normalizer"] = {{"type", "Replace"}, {"pattern", {{"String", " "}}}, {"content", kSpaceSymbol}};
  j["pre_tokenizer"] = nullptr;
  j["post_processor"] = nullptr;
  j["decoder"] = {{"type", "Sequence"},
                  {"decoders",
                   {{{"type", "Replace"}, {"pattern", {{"String", kSpaceSymbol}}}, {"content", " "}},
                    {{"type", "ByteFallback"}},
                    {{"type", "Fuse"}}}}};
  j["model"] = {{"type", "BPE"},
                {"dropout", nullptr},
                {"unk_token", unk >= 0 ? nlohmann::json(tokenizer.piece(unk)) : nlohmann::json(nullptr)},
                {"continuing_subword_prefix", nullptr},
                {"end_of_word_suffix", nullptr},
                {"fuse_unk", true},
                {"byte_fallback", has_bytes},
                {"ignore_merges", false},
                {"vocab", vocab},
                {"merges", merge_list}};
  return j;
}

nlohmann::json hf_tokenizer_config_json(const data::Tokenizer& tokenizer, int64_t model_max_length) {
  auto special = [&](int id) { return id >= 0 ? nlohmann::json(tokenizer.piece(id)) : nlohmann::json(nullptr); };
  nlohmann::json j;
  j["tokenizer_class"] = "PreTrainedTokenizerFast";
  // NOTE: no BOS. dirmoe never feeds <s> (documents are separated by </s>), so the tokenizer names
  // none: lm-eval-harness then starts an empty context with the EOS token, as dirmoe-eval does.
  j["bos_token"] = nullptr;
  j["eos_token"] = special(tokenizer.eos_id());
  j["unk_token"] = special(tokenizer.unk_id());
  j["pad_token"] = special(tokenizer.pad_id());
  j["add_bos_token"] = false;
  j["add_eos_token"] = false;
  // "<s>" in a text is three characters to SentencePiece, never the control id
  j["split_special_tokens"] = true;
  j["clean_up_tokenization_spaces"] = false;
  j["model_max_length"] = model_max_length;
  return j;
}

}  // namespace dirmoe::eval
