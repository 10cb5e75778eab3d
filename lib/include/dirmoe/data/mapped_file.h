#pragma once
// Read-only memory map of a whole file (token shards are read through the page cache, never
// copied whole into memory).
#include <cstddef>
#include <cstdint>
#include <string>

namespace dirmoe::data {

/// A read-only `mmap` of a file; an empty file maps to no memory (data() == nullptr, size() == 0).
class MappedFile {
 public:
  /// Throws IoError naming the file if it cannot be opened or mapped.
  explicit MappedFile(const std::string& path);
  ~MappedFile();
  MappedFile(const MappedFile&) = delete;
  MappedFile& operator=(const MappedFile&) = delete;

  const uint8_t* data() const { return data_; }
  size_t size() const { return size_; }
  const std::string& path() const { return path_; }

 private:
  std::string path_;
  const uint8_t* data_ = nullptr;
  size_t size_ = 0;
};

}  // namespace dirmoe::data
