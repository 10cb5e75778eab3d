#include "dirmoe/data/shard_writer.h"

#include <cerrno>
#include <cstring>

#include <fmt/format.h>

#include "dirmoe/core/build_info.h"
#include "dirmoe/core/error.h"

namespace dirmoe::data {
namespace fs = std::filesystem;

namespace {
constexpr size_t kFlushBytes = 1 << 22;

void write_or_throw(std::FILE* f, const void* p, size_t n, const fs::path& path) {
  if (n > 0 && std::fwrite(p, 1, n, f) != n) {
    throw IoError(fmt::format("{}: write failed ({}); is the disk full?", path.string(), std::strerror(errno)));
  }
}
}  // namespace

SplitWriter::SplitWriter(const fs::path& dir, const std::string& split, int dtype_bytes)
    : dir_(dir), split_(split), dtype_bytes_(dtype_bytes) {
  if (dtype_bytes != 2 && dtype_bytes != 4) throw DataError(fmt::format("token dtype must be 2 or 4 bytes, got {}", dtype_bytes));
  bin_ = std::make_unique<AtomicFile>(dir / (split + ".bin"));
  idx_ = std::make_unique<AtomicFile>(dir / (split + ".idx"));
  bin_file_ = std::fopen(bin_->temp_path().c_str(), "wb");
  if (bin_file_ == nullptr) {
    throw IoError(fmt::format("{}: cannot create ({})", bin_->temp_path().string(), std::strerror(errno)));
  }
  buffer_.reserve(kFlushBytes + 4096);
  summary_.name = split;
}

SplitWriter::~SplitWriter() {
  if (bin_file_ != nullptr) std::fclose(bin_file_);
}

void SplitWriter::flush() {
  bin_hash_.update(buffer_.data(), buffer_.size());
  write_or_throw(bin_file_, buffer_.data(), buffer_.size(), bin_->final_path());
  buffer_.clear();
}

void SplitWriter::add_document(const int32_t* ids, size_t n, int domain_id) {
  if (domain_id < 0 || domain_id > 65535) throw DataError(fmt::format("domain id {} does not fit uint16", domain_id));
  const int64_t max_id = dtype_bytes_ == 2 ? 65535 : 4294967295LL;
  for (size_t i = 0; i < n; ++i) {
    const int64_t id = ids[i];
    if (id < 0 || id > max_id) throw DataError(fmt::format("{}: token id {} does not fit the token dtype", split_, id));
    // Little-endian, byte by byte: the file layout does not depend on the host.
    buffer_.push_back(static_cast<uint8_t>(id & 0xff));
    buffer_.push_back(static_cast<uint8_t>((id >> 8) & 0xff));
    if (dtype_bytes_ == 4) {
      buffer_.push_back(static_cast<uint8_t>((id >> 16) & 0xff));
      buffer_.push_back(static_cast<uint8_t>((id >> 24) & 0xff));
    }
  }
  if (buffer_.size() >= kFlushBytes) flush();
  n_tokens_ += static_cast<int64_t>(n);
  offsets_.push_back(n_tokens_);
  domains_.push_back(static_cast<uint16_t>(domain_id));
  auto& pd = summary_.per_domain[domain_id];
  pd.first += 1;
  pd.second += static_cast<int64_t>(n);
}

SplitSummary SplitWriter::finish() {
  flush();
  if (std::fflush(bin_file_) != 0 || std::ferror(bin_file_)) {
    throw IoError(fmt::format("{}: write failed; is the disk full?", bin_->final_path().string()));
  }
  std::fclose(bin_file_);
  bin_file_ = nullptr;

  // Index: header, offsets, domain ids (little-endian on the hosts we build for; checked below).
  static_assert(sizeof(int64_t) == 8 && sizeof(uint16_t) == 2);
  const uint16_t probe = 1;
  if (*reinterpret_cast<const uint8_t*>(&probe) != 1) throw DataError("big-endian hosts are not supported");
  std::string idx;
  const uint64_t header[4] = {0, static_cast<uint64_t>(domains_.size()), static_cast<uint64_t>(n_tokens_), 0};
  idx.append(reinterpret_cast<const char*>(header), sizeof(header));
  std::memcpy(idx.data(), kIndexMagic, 8);
  idx.append(reinterpret_cast<const char*>(offsets_.data()), offsets_.size() * sizeof(int64_t));
  idx.append(reinterpret_cast<const char*>(domains_.data()), domains_.size() * sizeof(uint16_t));
  write_file_atomic(idx_->temp_path(), idx);

  summary_.n_tokens = n_tokens_;
  summary_.n_documents = static_cast<int64_t>(domains_.size());
  summary_.tokens_file = {split_ + ".bin", n_tokens_ * dtype_bytes_, bin_hash_.hex_digest()};
  summary_.index_file = {split_ + ".idx", static_cast<int64_t>(idx.size()), sha256_hex(idx)};
  bin_->commit();
  idx_->commit();
  return summary_;
}

std::string token_dtype_for_vocab(int64_t vocab_size) { return vocab_size <= 65536 ? "uint16" : "uint32"; }

FileEntry describe_file(const fs::path& dir, const std::string& name) {
  std::error_code ec;
  const auto bytes = fs::file_size(dir / name, ec);
  if (ec) throw IoError(fmt::format("{}: cannot stat ({})", (dir / name).string(), ec.message()));
  return {name, static_cast<int64_t>(bytes), sha256_file(dir / name)};
}

nlohmann::json make_shard_manifest(const std::vector<std::string>& domains, int64_t vocab_size, const FileEntry& tokenizer,
                                   int bos_id, int eos_id, const std::vector<SplitSummary>& splits,
                                   const nlohmann::json& extra) {
  nlohmann::json m;
  m["format"] = "dirmoe-shards";
  m["format_version"] = kShardFormatVersion;
  m["git_revision"] = git_revision();
  m["dtype"] = token_dtype_for_vocab(vocab_size);
  m["domains"] = domains;
  m["tokenizer"] = {{"file", tokenizer.name}, {"vocab_size", vocab_size}, {"bos_id", bos_id}, {"eos_id", eos_id}};
  nlohmann::json files = nlohmann::json::object();
  files[tokenizer.name] = {{"bytes", tokenizer.bytes}, {"sha256", tokenizer.sha256}};
  nlohmann::json js = nlohmann::json::object();
  for (const auto& s : splits) {
    nlohmann::json per = nlohmann::json::object();
    for (const auto& [id, c] : s.per_domain) {
      if (id < 0 || id >= static_cast<int>(domains.size())) throw DataError(fmt::format("domain id {} has no name", id));
      per[domains[static_cast<size_t>(id)]] = {{"documents", c.first}, {"tokens", c.second}};
    }
    js[s.name] = {{"tokens_file", s.tokens_file.name}, {"index_file", s.index_file.name}, {"n_tokens", s.n_tokens},
                  {"n_documents", s.n_documents}, {"domains", per}};
    files[s.tokens_file.name] = {{"bytes", s.tokens_file.bytes}, {"sha256", s.tokens_file.sha256}};
    files[s.index_file.name] = {{"bytes", s.index_file.bytes}, {"sha256", s.index_file.sha256}};
  }
  m["splits"] = js;
  m["files"] = files;
  for (auto it = extra.begin(); it != extra.end(); ++it) m[it.key()] = it.value();
  return m;
}

void write_shard_manifest(const fs::path& dir, const nlohmann::json& manifest) {
  write_file_atomic(dir / kManifestName, manifest.dump(2) + "\n");
}

}  // namespace dirmoe::data
