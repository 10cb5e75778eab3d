#pragma once
// Writing token shards. Layout of a built directory (format_version 1):
//   tokenizer.model          SentencePiece model
//   <split>.bin              tokens, raw little-endian uint16 (vocab <= 65536) or uint32, no header
//                            (nanoGPT/Megatron-style flat file); every document ends with EOS
//   <split>.idx              document index: 32-byte header {magic "DMIDX001", uint64 n_documents,
//                            uint64 n_tokens, uint64 0}, int64 offsets[n_documents + 1] (token
//                            positions, offsets[0] = 0, offsets[n] = n_tokens), uint16 domain[n_documents]
//   manifest.json            counts, sha256 and size of every file, tokenizer, dtype, arguments,
//                            git revision; written last and atomically: no manifest, no dataset.
#include <cstdint>
#include <cstdio>
#include <filesystem>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "dirmoe/core/atomic_file.h"
#include "dirmoe/core/sha256.h"

namespace dirmoe::data {

inline constexpr char kIndexMagic[8] = {'D', 'M', 'I', 'D', 'X', '0', '0', '1'};
inline constexpr int kShardFormatVersion = 1;
inline constexpr const char* kManifestName = "manifest.json";

/// Size and hash of one file of a built directory.
struct FileEntry {
  std::string name;  // relative to the directory
  int64_t bytes = 0;
  std::string sha256;
};

/// What one split holds, for the manifest.
struct SplitSummary {
  std::string name;
  int64_t n_tokens = 0;
  int64_t n_documents = 0;
  std::map<int, std::pair<int64_t, int64_t>> per_domain;  // domain id -> (documents, tokens)
  FileEntry tokens_file, index_file;
};

/// Streams the documents of one split to `<dir>/<split>.bin` and `.idx` under temporary names;
/// `finish()` renames both into place and returns their sizes and hashes. Abandoned (exception)
/// writers leave nothing behind.
class SplitWriter {
 public:
  /// `dtype_bytes` 2 (uint16) or 4 (uint32).
  SplitWriter(const std::filesystem::path& dir, const std::string& split, int dtype_bytes);
  ~SplitWriter();
  SplitWriter(const SplitWriter&) = delete;
  SplitWriter& operator=(const SplitWriter&) = delete;

  /// Append one document's token ids (EOS included by the caller) with its domain id.
  /// Throws DataError if an id does not fit the dtype.
  void add_document(const int32_t* ids, size_t n, int domain_id);
  SplitSummary finish();
  int64_t n_tokens() const { return n_tokens_; }

 private:
  void flush();
  std::filesystem::path dir_;
  std::string split_;
  int dtype_bytes_;
  std::unique_ptr<AtomicFile> bin_, idx_;
  std::FILE* bin_file_ = nullptr;
  std::vector<uint8_t> buffer_;
  Sha256 bin_hash_;
  std::vector<int64_t> offsets_{0};
  std::vector<uint16_t> domains_;
  int64_t n_tokens_ = 0;
  SplitSummary summary_;
};

/// Token dtype name for a vocabulary: "uint16" if every id fits 16 bits, else "uint32".
std::string token_dtype_for_vocab(int64_t vocab_size);

/// The manifest of a built directory (see the layout above). `extra` is merged in at top level
/// (arguments, sources, timing ...).
nlohmann::json make_shard_manifest(const std::vector<std::string>& domains, int64_t vocab_size, const FileEntry& tokenizer,
                                   int bos_id, int eos_id, const std::vector<SplitSummary>& splits,
                                   const nlohmann::json& extra = nlohmann::json::object());

/// Write `manifest` to `<dir>/manifest.json` atomically (the last step of a build).
void write_shard_manifest(const std::filesystem::path& dir, const nlohmann::json& manifest);

/// Size and sha256 of `<dir>/<name>`.
FileEntry describe_file(const std::filesystem::path& dir, const std::string& name);

}  // namespace dirmoe::data
