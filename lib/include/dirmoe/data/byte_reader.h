#pragma once
// Reading corpus files that may be compressed: plain, gzip (also dictzip, which is gzip with an
// extra header field) and Zstandard, recognised by their magic bytes, not their names.
#include <cstdint>
#include <filesystem>
#include <memory>
#include <string>

namespace dirmoe::data {

/// Streaming reader over a plain, gzip or zstd file. Errors (missing file, corrupt stream) throw
/// IoError naming the file.
class ByteReader {
 public:
  explicit ByteReader(const std::filesystem::path& path);
  ~ByteReader();
  ByteReader(const ByteReader&) = delete;
  ByteReader& operator=(const ByteReader&) = delete;

  /// Read up to `n` decompressed bytes; returns 0 at the end.
  size_t read(char* dst, size_t n);
  /// Next line without its '\n' (a trailing '\r' is kept); false at the end of the file.
  bool read_line(std::string& line);
  /// "plain", "gzip" or "zstd".
  const char* format() const;
  /// Compressed bytes consumed so far (the file's size once fully read).
  int64_t raw_bytes_read() const;

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

/// The whole decompressed contents of a file.
std::string read_decompressed(const std::filesystem::path& path);

}  // namespace dirmoe::data
