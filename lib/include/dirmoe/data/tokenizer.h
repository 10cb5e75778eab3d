#pragma once
// SentencePiece tokenizer (Kudo & Richardson 2018): loading a .model, encoding and decoding, and
// training a byte-fallback BPE model on sample text. The processor itself stays out of this header.
#include <cstdint>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

namespace sentencepiece {
class SentencePieceProcessor;
}

namespace dirmoe::data {

/// A loaded SentencePiece model. Encoding is thread-safe (const).
class Tokenizer {
 public:
  /// Throws IoError naming the file if it is missing or not a SentencePiece model.
  explicit Tokenizer(const std::string& model_path);
  ~Tokenizer();
  Tokenizer(Tokenizer&&) noexcept;
  Tokenizer& operator=(Tokenizer&&) noexcept;

  /// Token ids of `text`, without BOS/EOS.
  std::vector<int> encode(std::string_view text) const;
  /// Text of `ids` (control ids such as BOS/EOS decode to nothing).
  std::string decode(const std::vector<int>& ids) const;
  int64_t vocab_size() const;
  int bos_id() const;  // -1 if the model has none
  int eos_id() const;
  int unk_id() const;
  int pad_id() const;
  /// The piece string of `id` (e.g. "▁the", "<0x0A>"); throws std::out_of_range for a bad id.
  std::string piece(int id) const;
  /// The piece's score (BPE: its merge priority, higher merges first) and kind; throw
  /// std::out_of_range for a bad id like piece().
  float score(int id) const;
  enum class PieceKind { kNormal, kUnknown, kControl, kUserDefined, kByte, kUnused };
  PieceKind piece_kind(int id) const;
  const std::string& path() const { return path_; }

 private:
  std::string path_;
  std::unique_ptr<sentencepiece::SentencePieceProcessor> sp_;
};

/// Settings of `train_tokenizer`. Defaults: BPE with byte fallback and the identity normaliser,
/// so every input encodes without <unk> and decode(encode(x)) == x for valid UTF-8, whitespace and
/// newlines included (code and reST keep their indentation).
struct TokenizerTrainOptions {
  int64_t vocab_size = 8192;
  int threads = 2;
  double character_coverage = 0.9995;
  int64_t max_piece_length = 16;
};

/// Train a BPE model on `samples` (each a "sentence": a paragraph or a few lines) and write the
/// .model atomically to `model_path`. Ids: 0 <unk>, 1 <s> (BOS), 2 </s> (EOS); no pad.
/// Throws DataError when the samples cannot support `vocab_size` pieces (the message says the
/// largest size SentencePiece would accept, if it reported one) and when training fails.
void train_tokenizer(const std::vector<std::string>& samples, const std::string& model_path,
                     const TokenizerTrainOptions& options);

}  // namespace dirmoe::data
