#pragma once
// Write-to-temporary-then-rename, so that a crash or a kill never leaves half a file where a good
// one was (or where a later run would take it as complete).
#include <filesystem>
#include <string>

namespace dirmoe {

/// Owns a temporary path next to `final_path`. Write to `temp_path()` by any means, then call
/// `commit()`: it fsyncs the file and renames it over `final_path` (atomic on POSIX within one
/// file system). If `commit()` is never reached (exception, early return) the destructor removes
/// the temporary file.
class AtomicFile {
 public:
  explicit AtomicFile(std::filesystem::path final_path);
  ~AtomicFile();
  AtomicFile(const AtomicFile&) = delete;
  AtomicFile& operator=(const AtomicFile&) = delete;

  const std::filesystem::path& temp_path() const { return temp_path_; }
  const std::filesystem::path& final_path() const { return final_path_; }
  /// fsync the temporary file (and the directory after the rename) and rename it into place.
  void commit();

 private:
  std::filesystem::path final_path_;
  std::filesystem::path temp_path_;
  bool committed_ = false;
};

/// Atomically replace `path` with `contents`. Throws IoError naming the path on failure
/// (read-only directory, full disk, ...).
void write_file_atomic(const std::filesystem::path& path, const std::string& contents);

/// Read a whole file; throws IoError naming the path if it is missing or unreadable.
std::string read_file(const std::filesystem::path& path);

/// Create `dir` (and parents) or throw IoError saying why.
void ensure_directory(const std::filesystem::path& dir);

}  // namespace dirmoe
