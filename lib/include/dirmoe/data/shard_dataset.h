#pragma once
// Reading a directory written by `dirmoe-data build` (layout in shard_writer.h): the manifest is
// checked on open (every file present with the size it records), token and index files are mmapped.
#include <cstdint>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "dirmoe/data/mapped_file.h"

namespace dirmoe::data {

/// One split: a flat token array with document boundaries and a domain id per document.
/// Cheap to copy (the maps are shared).
class TokenSplit {
 public:
  TokenSplit(std::string name, std::shared_ptr<const MappedFile> tokens, std::shared_ptr<const MappedFile> index,
             int dtype_bytes, std::shared_ptr<const std::vector<std::string>> domain_names);

  const std::string& name() const { return name_; }
  /// Number of tokens.
  int64_t size() const { return n_tokens_; }
  int64_t n_documents() const { return n_documents_; }
  int dtype_bytes() const { return dtype_bytes_; }
  const std::vector<std::string>& domains() const { return *domain_names_; }

  /// Token at position `i` (0 <= i < size()).
  int64_t token(int64_t i) const;
  /// Copy tokens [start, start + n) as int64 into `out`.
  void copy_tokens(int64_t start, int64_t n, int64_t* out) const;
  /// First token of document `d`; `doc_begin(n_documents())` == size().
  int64_t doc_begin(int64_t d) const { return offsets_[d]; }
  int64_t doc_end(int64_t d) const { return offsets_[d + 1]; }
  /// Domain id of document `d` (an index into domains()).
  int doc_domain(int64_t d) const { return domain_ids_[d]; }
  /// Document holding token position `pos` (binary search over the offsets).
  int64_t document_of(int64_t pos) const;
  /// Domain id of the document holding token position `pos`.
  int domain_of(int64_t pos) const { return doc_domain(document_of(pos)); }
  /// Tokens per domain id.
  std::vector<int64_t> tokens_per_domain() const;

 private:
  std::string name_;
  std::shared_ptr<const MappedFile> tokens_, index_;
  int dtype_bytes_;
  std::shared_ptr<const std::vector<std::string>> domain_names_;
  int64_t n_tokens_ = 0, n_documents_ = 0;
  const int64_t* offsets_ = nullptr;     // (n_documents + 1)
  const uint16_t* domain_ids_ = nullptr; // (n_documents)
};

/// A built data directory. The constructor checks the manifest against the files (presence,
/// sizes, index headers) and throws DataError naming the file and saying to rebuild; `verify()`
/// additionally checks every sha256.
class ShardDataset {
 public:
  explicit ShardDataset(const std::string& dir);

  /// Recompute the sha256 of every file listed in the manifest; throws DataError naming the first
  /// file whose hash disagrees.
  void verify() const;
  int64_t vocab_size() const { return vocab_size_; }
  const std::vector<std::string>& domains() const { return *domains_; }
  /// Absolute path of the tokenizer model.
  std::string tokenizer_path() const;
  int bos_id() const { return bos_id_; }
  int eos_id() const { return eos_id_; }
  /// "uint16" or "uint32".
  const std::string& dtype() const { return dtype_; }
  /// The split `name` ("train", "validation", "heldout"); throws DataError for an unknown name.
  TokenSplit split(const std::string& name) const;
  std::vector<std::string> split_names() const;
  const nlohmann::json& manifest() const { return manifest_; }
  const std::string& dir() const { return dir_; }

 private:
  std::string dir_;
  nlohmann::json manifest_;
  int64_t vocab_size_ = 0;
  int bos_id_ = -1, eos_id_ = -1;
  std::string dtype_;
  std::shared_ptr<const std::vector<std::string>> domains_;
  std::map<std::string, TokenSplit> splits_;
};

}  // namespace dirmoe::data
