#include "dirmoe/data/shard_dataset.h"

#include <algorithm>
#include <cstring>
#include <filesystem>

#include <fmt/format.h>
#include <fmt/ranges.h>

#include "dirmoe/core/atomic_file.h"
#include "dirmoe/core/error.h"
#include "dirmoe/core/sha256.h"
#include "dirmoe/data/shard_writer.h"

namespace dirmoe::data {
namespace fs = std::filesystem;

TokenSplit::TokenSplit(std::string name, std::shared_ptr<const MappedFile> tokens, std::shared_ptr<const MappedFile> index,
                       int dtype_bytes, std::shared_ptr<const std::vector<std::string>> domain_names)
    : name_(std::move(name)),
      tokens_(std::move(tokens)),
      index_(std::move(index)),
      dtype_bytes_(dtype_bytes),
      domain_names_(std::move(domain_names)) {
  const auto& ipath = index_->path();
  if (index_->size() < 32 || std::memcmp(index_->data(), kIndexMagic, 8) != 0) {
    throw DataError(fmt::format("{}: not a dirmoe document index (bad header); rebuild the data directory", ipath));
  }
  uint64_t header[4];
  std::memcpy(header, index_->data(), sizeof(header));
  // Bound the header's counts by the file sizes first, so that the size arithmetic below cannot wrap.
  if (header[1] > (index_->size() - 32) / 10 || header[2] > tokens_->size() / static_cast<size_t>(dtype_bytes_)) {
    throw DataError(fmt::format("{}: its header describes {} documents and {} tokens, more than the files hold; the "
                                "file is truncated or corrupted, rebuild the data directory",
                                ipath, header[1], header[2]));
  }
  n_documents_ = static_cast<int64_t>(header[1]);
  n_tokens_ = static_cast<int64_t>(header[2]);
  const size_t expect = 32 + (static_cast<size_t>(n_documents_) + 1) * 8 + static_cast<size_t>(n_documents_) * 2;
  if (index_->size() != expect) {
    throw DataError(fmt::format("{}: {} bytes, but its header describes {} documents ({} bytes); the file is truncated "
                                "or corrupted, rebuild the data directory", ipath, index_->size(), n_documents_, expect));
  }
  if (tokens_->size() != static_cast<size_t>(n_tokens_) * static_cast<size_t>(dtype_bytes_)) {
    throw DataError(fmt::format("{}: {} bytes, but {} tokens of {} bytes are indexed; rebuild the data directory",
                                tokens_->path(), tokens_->size(), n_tokens_, dtype_bytes_));
  }
  offsets_ = reinterpret_cast<const int64_t*>(index_->data() + 32);
  domain_ids_ = reinterpret_cast<const uint16_t*>(index_->data() + 32 + (n_documents_ + 1) * 8);
  if (offsets_[0] != 0 || offsets_[n_documents_] != n_tokens_) {
    throw DataError(fmt::format("{}: document offsets do not cover the {} tokens; rebuild the data directory", ipath, n_tokens_));
  }
  for (int64_t d = 0; d < n_documents_; ++d) {
    if (offsets_[d + 1] < offsets_[d]) throw DataError(fmt::format("{}: document offsets are not sorted at {}", ipath, d));
    if (domain_ids_[d] >= domain_names_->size()) {
      throw DataError(fmt::format("{}: document {} has domain id {}, but the manifest names {} domains", ipath, d,
                                  domain_ids_[d], domain_names_->size()));
    }
  }
}

int64_t TokenSplit::token(int64_t i) const {
  const uint8_t* p = tokens_->data() + i * dtype_bytes_;
  if (dtype_bytes_ == 2) return int64_t(p[0]) | (int64_t(p[1]) << 8);
  return int64_t(p[0]) | (int64_t(p[1]) << 8) | (int64_t(p[2]) << 16) | (int64_t(p[3]) << 24);
}

void TokenSplit::copy_tokens(int64_t start, int64_t n, int64_t* out) const {
  if (start < 0 || n < 0 || start + n > n_tokens_) {
    throw std::out_of_range(fmt::format("{}: tokens [{}, {}) outside [0, {})", name_, start, start + n, n_tokens_));
  }
  if (dtype_bytes_ == 2) {
    uint16_t v;
    const uint8_t* p = tokens_->data() + start * 2;
    for (int64_t i = 0; i < n; ++i) {
      std::memcpy(&v, p + i * 2, 2);
      out[i] = v;
    }
  } else {
    uint32_t v;
    const uint8_t* p = tokens_->data() + start * 4;
    for (int64_t i = 0; i < n; ++i) {
      std::memcpy(&v, p + i * 4, 4);
      out[i] = v;
    }
  }
}

int64_t TokenSplit::document_of(int64_t pos) const {
  if (pos < 0 || pos >= n_tokens_) throw std::out_of_range(fmt::format("{}: position {} outside [0, {})", name_, pos, n_tokens_));
  // The last document whose first token is <= pos (empty documents are skipped over).
  const int64_t* it = std::upper_bound(offsets_, offsets_ + n_documents_ + 1, pos);
  return static_cast<int64_t>(it - offsets_) - 1;
}

std::vector<int64_t> TokenSplit::tokens_per_domain() const {
  std::vector<int64_t> out(domain_names_->size(), 0);
  for (int64_t d = 0; d < n_documents_; ++d) out[domain_ids_[d]] += offsets_[d + 1] - offsets_[d];
  return out;
}

namespace {

template <typename T>
T get_field(const nlohmann::json& j, const char* key, const std::string& where) {
  auto it = j.find(key);
  if (it == j.end()) throw DataError(fmt::format("{}: missing \"{}\"; rebuild the data directory", where, key));
  try {
    return it->get<T>();
  } catch (const nlohmann::json::exception& e) {
    throw DataError(fmt::format("{}: \"{}\" has the wrong type ({})", where, key, e.what()));
  }
}

/// The object `key` of `j`, or a DataError naming `where`.
nlohmann::json get_section(const nlohmann::json& j, const char* key, const std::string& where) {
  auto section = get_field<nlohmann::json>(j, key, where);
  if (!section.is_object()) throw DataError(fmt::format("{}: \"{}\" is not an object; rebuild the data directory", where, key));
  return section;
}

}  // namespace

ShardDataset::ShardDataset(const std::string& dir) : dir_(dir) {
  const fs::path mpath = fs::path(dir) / kManifestName;
  if (!fs::is_directory(dir)) throw DataError(fmt::format("{}: data directory not found; build it with `dirmoe-data build --out {}`", dir, dir));
  if (!fs::exists(mpath)) {
    throw DataError(fmt::format("{}: no manifest.json, so this is not a finished data directory (an interrupted build?); "
                                "rebuild it with `dirmoe-data build --out {}`", dir, dir));
  }
  const std::string where = mpath.string();
  try {
    manifest_ = nlohmann::json::parse(read_file(mpath));
  } catch (const nlohmann::json::exception& e) {
    throw DataError(fmt::format("{}: not valid JSON ({})", where, e.what()));
  }
  if (get_field<std::string>(manifest_, "format", where) != "dirmoe-shards") throw DataError(where + ": not a dirmoe shard manifest");
  const int version = get_field<int>(manifest_, "format_version", where);
  if (version != kShardFormatVersion) {
    throw DataError(fmt::format("{}: format_version {} but this build reads {}; rebuild the data directory", where, version,
                                kShardFormatVersion));
  }
  dtype_ = get_field<std::string>(manifest_, "dtype", where);
  if (dtype_ != "uint16" && dtype_ != "uint32") throw DataError(fmt::format("{}: unknown dtype '{}'", where, dtype_));
  domains_ = std::make_shared<const std::vector<std::string>>(get_field<std::vector<std::string>>(manifest_, "domains", where));
  if (!manifest_.is_object()) throw DataError(where + ": not a dirmoe shard manifest (not a JSON object)");
  const auto tok = get_section(manifest_, "tokenizer", where);
  vocab_size_ = get_field<int64_t>(tok, "vocab_size", where + " tokenizer");
  bos_id_ = get_field<int>(tok, "bos_id", where + " tokenizer");
  eos_id_ = get_field<int>(tok, "eos_id", where + " tokenizer");
  if (token_dtype_for_vocab(vocab_size_) != dtype_ && dtype_ == "uint16") {
    throw DataError(fmt::format("{}: vocabulary of {} does not fit dtype {}", where, vocab_size_, dtype_));
  }
  // Sizes of every listed file: cheap, always checked.
  const auto files = get_section(manifest_, "files", where);
  for (auto it = files.begin(); it != files.end(); ++it) {
    const fs::path p = fs::path(dir) / it.key();
    if (!it.value().is_object()) throw DataError(fmt::format("{}: files.{} is not an object", where, it.key()));
    std::error_code ec;
    const auto size = fs::file_size(p, ec);
    if (ec) throw DataError(fmt::format("{}: listed in the manifest but missing ({}); rebuild the data directory", p.string(), ec.message()));
    const auto expect = get_field<int64_t>(it.value(), "bytes", where + " files." + it.key());
    if (static_cast<int64_t>(size) != expect) {
      throw DataError(fmt::format("{}: {} bytes, but the manifest says {}; the file is truncated or corrupted, rebuild "
                                  "the data directory", p.string(), size, expect));
    }
  }
  const int dtype_bytes = dtype_ == "uint16" ? 2 : 4;
  const auto splits = get_section(manifest_, "splits", where);
  for (auto it = splits.begin(); it != splits.end(); ++it) {
    const std::string sw = where + " splits." + it.key();
    if (!it.value().is_object()) throw DataError(fmt::format("{}: not an object", sw));
    auto tokens = std::make_shared<const MappedFile>((fs::path(dir) / get_field<std::string>(it.value(), "tokens_file", sw)).string());
    auto index = std::make_shared<const MappedFile>((fs::path(dir) / get_field<std::string>(it.value(), "index_file", sw)).string());
    TokenSplit split(it.key(), tokens, index, dtype_bytes, domains_);
    const auto n_tokens = get_field<int64_t>(it.value(), "n_tokens", sw);
    if (split.size() != n_tokens) {
      throw DataError(fmt::format("{}: holds {} tokens, the manifest says {}", index->path(), split.size(), n_tokens));
    }
    splits_.emplace(it.key(), std::move(split));
  }
}

void ShardDataset::verify() const {
  const std::string where = (fs::path(dir_) / kManifestName).string();
  const auto& files = manifest_.at("files");  // checked to be an object by the constructor
  for (auto it = files.begin(); it != files.end(); ++it) {
    const fs::path p = fs::path(dir_) / it.key();
    const auto expect = get_field<std::string>(it.value(), "sha256", where + " files." + it.key());
    const std::string got = sha256_file(p);
    if (got != expect) {
      throw DataError(fmt::format("{}: sha256 {} does not match the manifest ({}); the file is corrupted, rebuild the "
                                  "data directory", p.string(), got, expect));
    }
  }
}

std::string ShardDataset::tokenizer_path() const {
  const std::string where = (fs::path(dir_) / kManifestName).string() + " tokenizer";
  return fs::absolute(fs::path(dir_) / get_field<std::string>(manifest_.at("tokenizer"), "file", where)).string();
}

TokenSplit ShardDataset::split(const std::string& name) const {
  auto it = splits_.find(name);
  if (it == splits_.end()) {
    throw DataError(fmt::format("{}: no split '{}' (have: {})", dir_, name, fmt::format("{}", fmt::join(split_names(), ", "))));
  }
  return it->second;
}

std::vector<std::string> ShardDataset::split_names() const {
  std::vector<std::string> names;
  for (const auto& [k, v] : splits_) names.push_back(k);
  return names;
}

}  // namespace dirmoe::data
