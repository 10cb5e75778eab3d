#include "dirmoe/core/atomic_file.h"

#include <fcntl.h>
#include <unistd.h>

#include <atomic>
#include <cerrno>
#include <cstring>
#include <fstream>
#include <sstream>

#include <fmt/format.h>

#include "dirmoe/core/error.h"
#include "dirmoe/core/remove_tree.h"

namespace dirmoe {
namespace fs = std::filesystem;

namespace {

std::atomic<unsigned> g_temp_counter{0};

void fsync_path(const fs::path& path, bool directory) {
  int fd = ::open(path.c_str(), directory ? O_RDONLY | O_DIRECTORY : O_RDONLY);
  if (fd < 0) return;  // best effort: some file systems refuse to open directories
  if (::fsync(fd) != 0 && !directory) {
    int err = errno;
    ::close(fd);
    throw IoError(fmt::format("{}: fsync failed: {}", path.string(), std::strerror(err)));
  }
  ::close(fd);
}

}  // namespace

AtomicFile::AtomicFile(fs::path final_path) : final_path_(std::move(final_path)) {
  // NOTE: pid + counter keeps concurrent writers (several ranks, several threads) apart.
  temp_path_ = final_path_;
  temp_path_ += fmt::format(".tmp.{}.{}", ::getpid(), g_temp_counter++);
}

AtomicFile::~AtomicFile() {
  if (!committed_) remove_tree(temp_path_.string());
}

void AtomicFile::commit() {
  if (!fs::exists(temp_path_)) {
    throw IoError(fmt::format("{}: nothing was written to the temporary file {}", final_path_.string(),
                              temp_path_.string()));
  }
  if (fs::is_regular_file(temp_path_)) fsync_path(temp_path_, false);
  std::error_code ec;
  fs::rename(temp_path_, final_path_, ec);
  if (ec) {
    throw IoError(fmt::format("{}: could not move the finished file into place: {}", final_path_.string(),
                              ec.message()));
  }
  committed_ = true;
  auto parent = final_path_.parent_path();
  fsync_path(parent.empty() ? fs::path(".") : parent, true);
}

void write_file_atomic(const fs::path& path, const std::string& contents) {
  AtomicFile file(path);
  {
    std::ofstream out(file.temp_path(), std::ios::binary | std::ios::trunc);
    if (!out) {
      throw IoError(fmt::format("{}: cannot create file ({}); check that the directory exists and is writable",
                                path.string(), std::strerror(errno)));
    }
    out.write(contents.data(), static_cast<std::streamsize>(contents.size()));
    out.flush();
    if (!out) {
      throw IoError(fmt::format("{}: write failed ({}); is the disk full?", path.string(), std::strerror(errno)));
    }
  }
  file.commit();
}

std::string read_file(const fs::path& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) {
    throw IoError(fmt::format("{}: cannot open for reading ({})", path.string(), std::strerror(errno)));
  }
  std::ostringstream ss;
  ss << in.rdbuf();
  if (in.bad()) throw IoError(fmt::format("{}: read failed", path.string()));
  return ss.str();
}

void ensure_directory(const fs::path& dir) {
  std::error_code ec;
  fs::create_directories(dir, ec);
  if (ec || !fs::is_directory(dir)) {
    throw IoError(fmt::format("{}: cannot create output directory: {}", dir.string(),
                              ec ? ec.message() : "a file of that name is in the way"));
  }
}

}  // namespace dirmoe
