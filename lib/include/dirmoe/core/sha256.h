#pragma once
// SHA-256 (FIPS 180-4, §6.2) for the integrity hashes in data manifests and checkpoints.
#include <cstddef>
#include <cstdint>
#include <filesystem>
#include <string>

namespace dirmoe {

/// Incremental SHA-256 (FIPS 180-4 §6.2.2: 64 rounds over 512-bit blocks, padding per §5.1.1).
class Sha256 {
 public:
  Sha256();
  void update(const void* data, size_t n_bytes);
  void update(const std::string& s) { update(s.data(), s.size()); }
  /// Finish and return the digest as 64 lowercase hex characters. The object is spent afterwards.
  std::string hex_digest();

 private:
  void compress(const uint8_t* block);
  uint32_t h_[8];
  uint8_t buffer_[64];
  size_t buffered_ = 0;
  uint64_t total_bytes_ = 0;
};

/// SHA-256 of a byte string, as lowercase hex.
std::string sha256_hex(const std::string& bytes);

/// SHA-256 of a file's contents (streamed); throws IoError naming the file if it cannot be read.
std::string sha256_file(const std::filesystem::path& path);

}  // namespace dirmoe
