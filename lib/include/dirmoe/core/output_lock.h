#pragma once
// One writer per output: an exclusive advisory lock (flock(2)) on a lock file beside what a command
// writes, taken before its first write and held for the life of the process. The kernel releases it on
// any exit, SIGKILL included, so there is no stale lock to clean up: the file itself stays and only says
// who held it last. A second writer is refused at once with one line naming the output and the holder.
//
//   RUN/.dirmoe.lock       a directory output (dirmoe-train --out, dirmoe-data build --out,
//                          dirmoe-analyze --out, dirmoe-eval export --out)
//   DIR/.NAME.lock         a file output DIR/NAME (dirmoe-eval --out eval.json): other files of DIR
//                          stay writable, e.g. while dirmoe-train writes its checkpoints there
//
// On NFS, flock is carried by NFS byte-range locks (Linux ≥ 2.6.12, NFSv4 or lockd): writers on
// different hosts exclude each other when the server supports locking (docs/reliability.md).
#include <filesystem>
#include <string>

#include "dirmoe/core/error.h"

namespace dirmoe {

/// Another process holds the lock of an output.
class OutputBusy : public IoError {
 public:
  using IoError::IoError;
};

class OutputLock {
 public:
  /// Locks `lock_path` (its directory is created) for `output` (named in messages) on behalf of
  /// `command` (the command line, recorded for the next one to read). Throws OutputBusy when another
  /// process holds it, IoError when the lock file cannot be opened or locked.
  OutputLock(const std::filesystem::path& lock_path, const std::filesystem::path& output, const std::string& command);
  ~OutputLock();
  OutputLock(const OutputLock&) = delete;
  OutputLock& operator=(const OutputLock&) = delete;

  /// The lock file of a directory output.
  static std::filesystem::path for_directory(const std::filesystem::path& dir);
  /// The lock file of a file output.
  static std::filesystem::path for_file(const std::filesystem::path& file);
  /// argv joined by spaces, for `command`.
  static std::string command_line(int argc, char** argv);

 private:
  int fd_ = -1;
};

}  // namespace dirmoe
