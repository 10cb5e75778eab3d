#include "dirmoe/data/tokenizer.h"

#include <sentencepiece_processor.h>
#include <sentencepiece_trainer.h>

#include <filesystem>
#include <unordered_map>

#include <fmt/format.h>

#include "dirmoe/core/atomic_file.h"
#include "dirmoe/core/error.h"

namespace dirmoe::data {

Tokenizer::Tokenizer(const std::string& model_path)
    : path_(model_path), sp_(std::make_unique<sentencepiece::SentencePieceProcessor>()) {
  if (!std::filesystem::is_regular_file(model_path)) {
    throw IoError(fmt::format("{}: tokenizer model not found", model_path));
  }
  const auto status = sp_->Load(model_path);
  if (!status.ok()) {
    throw IoError(fmt::format("{}: not a readable SentencePiece model ({})", model_path, status.ToString()));
  }
}

Tokenizer::~Tokenizer() = default;
Tokenizer::Tokenizer(Tokenizer&&) noexcept = default;
Tokenizer& Tokenizer::operator=(Tokenizer&&) noexcept = default;

std::vector<int> Tokenizer::encode(std::string_view text) const {
  std::vector<int> ids;
  const auto status = sp_->Encode(absl::string_view(text.data(), text.size()), &ids);
  if (!status.ok()) throw DataError(fmt::format("{}: encoding failed ({})", path_, status.ToString()));
  return ids;
}

std::string Tokenizer::decode(const std::vector<int>& ids) const {
  const int64_t n = vocab_size();
  for (int id : ids) {
    if (id < 0 || id >= n) throw DataError(fmt::format("{}: token id {} outside the vocabulary [0, {})", path_, id, n));
  }
  std::string text;
  const auto status = sp_->Decode(ids, &text);
  if (!status.ok()) throw DataError(fmt::format("{}: decoding failed ({})", path_, status.ToString()));
  return text;
}

int64_t Tokenizer::vocab_size() const { return sp_->GetPieceSize(); }
int Tokenizer::bos_id() const { return sp_->bos_id(); }
int Tokenizer::eos_id() const { return sp_->eos_id(); }
int Tokenizer::unk_id() const { return sp_->unk_id(); }
int Tokenizer::pad_id() const { return sp_->pad_id(); }

std::string Tokenizer::piece(int id) const {
  if (id < 0 || id >= vocab_size()) throw std::out_of_range(fmt::format("token id {} outside the vocabulary", id));
  return sp_->IdToPiece(id);
}

float Tokenizer::score(int id) const {
  if (id < 0 || id >= vocab_size()) throw std::out_of_range(fmt::format("token id {} outside the vocabulary", id));
  return sp_->GetScore(id);
}

Tokenizer::PieceKind Tokenizer::piece_kind(int id) const {
  if (id < 0 || id >= vocab_size()) throw std::out_of_range(fmt::format("token id {} outside the vocabulary", id));
  if (sp_->IsUnknown(id)) return PieceKind::kUnknown;
  if (sp_->IsControl(id)) return PieceKind::kControl;
  if (sp_->IsByte(id)) return PieceKind::kByte;
  if (sp_->IsUnused(id)) return PieceKind::kUnused;
  // NOTE: the processor has no IsUserDefined(); a user-defined piece is normal to it except that the
  // model proto marks it, which only the trainer's options create (train_tokenizer defines none).
  return PieceKind::kNormal;
}

namespace {

class VectorSentences : public sentencepiece::SentenceIterator {
 public:
  explicit VectorSentences(const std::vector<std::string>& v) : v_(v) {}
  bool done() const override { return i_ >= v_.size(); }
  void Next() override { ++i_; }
  const std::string& value() const override { return v_[i_]; }
  sentencepiece::util::Status status() const override { return sentencepiece::util::Status(); }

 private:
  const std::vector<std::string>& v_;
  size_t i_ = 0;
};

}  // namespace

void train_tokenizer(const std::vector<std::string>& samples, const std::string& model_path,
                     const TokenizerTrainOptions& options) {
  if (samples.empty()) throw DataError(fmt::format("{}: no training text for the tokenizer", model_path));
  size_t max_len = 0;
  for (const auto& s : samples) max_len = std::max(max_len, s.size());
  std::unordered_map<std::string, std::string> args = {
      {"model_type", "bpe"},
      {"vocab_size", std::to_string(options.vocab_size)},
      {"character_coverage", fmt::format("{}", options.character_coverage)},
      {"byte_fallback", "true"},
      {"normalization_rule_name", "identity"},
      {"remove_extra_whitespaces", "false"},
      {"add_dummy_prefix", "false"},
      {"allow_whitespace_only_pieces", "true"},
      {"split_digits", "true"},
      {"max_sentence_length", std::to_string(std::max<size_t>(max_len + 1, 4096))},
      {"max_sentencepiece_length", std::to_string(options.max_piece_length)},
      {"num_threads", std::to_string(std::max(1, options.threads))},
      {"unk_id", "0"},
      {"bos_id", "1"},
      {"eos_id", "2"},
      {"pad_id", "-1"},
      {"hard_vocab_limit", "true"},
      {"minloglevel", "1"},
  };
  VectorSentences it(samples);
  std::string proto;
  const auto status = sentencepiece::SentencePieceTrainer::Train(args, &it, &proto);
  if (!status.ok()) {
    const std::string msg = status.ToString();
    if (msg.find("ocabulary size") != std::string::npos || msg.find("vocab_size") != std::string::npos) {
      throw DataError(fmt::format("{}: --vocab-size {} is larger than this corpus supports ({}); lower --vocab-size "
                                  "or add text", model_path, options.vocab_size, msg));
    }
    throw DataError(fmt::format("{}: tokenizer training failed ({})", model_path, msg));
  }
  // NOTE: BPE training may stop early when the text runs out of merges; a model smaller than asked
  // would silently change the vocabulary every later stage assumes.
  sentencepiece::SentencePieceProcessor check;
  if (!check.LoadFromSerializedProto(proto).ok()) throw DataError(fmt::format("{}: trained model does not load", model_path));
  if (check.GetPieceSize() != options.vocab_size) {
    throw DataError(fmt::format("{}: --vocab-size {} is larger than this corpus supports (training ended at {} pieces); "
                                "lower --vocab-size or add text", model_path, options.vocab_size, check.GetPieceSize()));
  }
  write_file_atomic(model_path, proto);
}

}  // namespace dirmoe::data
