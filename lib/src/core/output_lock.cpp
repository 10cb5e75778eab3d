#include "dirmoe/core/output_lock.h"

#include <fcntl.h>
#include <sys/file.h>
#include <unistd.h>

#include <cerrno>
#include <chrono>
#include <cstring>
#include <ctime>

#include <fmt/format.h>
#include <nlohmann/json.hpp>

#include "dirmoe/core/atomic_file.h"

namespace dirmoe {
namespace {

std::string hostname() {
  char name[256] = {0};
  if (::gethostname(name, sizeof(name) - 1) != 0) return "unknown host";
  return name;
}

std::string utc_now() {
  const std::time_t now = std::chrono::system_clock::to_time_t(std::chrono::system_clock::now());
  std::tm tm{};
  ::gmtime_r(&now, &tm);
  char text[32];
  std::strftime(text, sizeof(text), "%Y-%m-%dT%H:%M:%SZ", &tm);
  return text;
}

/// What the holder wrote into the lock file, as "pid P on host H since T (C)"; what is readable of it.
std::string describe_holder(int fd) {
  std::string text;
  char buf[4096];
  ssize_t n;
  if (::lseek(fd, 0, SEEK_SET) == 0) {
    while ((n = ::read(fd, buf, sizeof(buf))) > 0) text.append(buf, static_cast<size_t>(n));
  }
  try {
    const nlohmann::json j = nlohmann::json::parse(text);
    return fmt::format("pid {} on host {} since {} ({})", j.at("pid").get<int64_t>(), j.at("host").get<std::string>(),
                       j.at("started").get<std::string>(), j.at("command").get<std::string>());
  } catch (const std::exception&) {
    return "a process that has not written its name yet";
  }
}

}  // namespace

std::filesystem::path OutputLock::for_directory(const std::filesystem::path& dir) { return dir / ".dirmoe.lock"; }

std::filesystem::path OutputLock::for_file(const std::filesystem::path& file) {
  const std::filesystem::path parent = file.has_parent_path() ? file.parent_path() : std::filesystem::path(".");
  return parent / ("." + file.filename().string() + ".lock");
}

std::string OutputLock::command_line(int argc, char** argv) {
  std::string line;
  for (int i = 0; i < argc; ++i) line += (i ? " " : "") + std::string(argv[i]);
  return line;
}

OutputLock::OutputLock(const std::filesystem::path& lock_path, const std::filesystem::path& output,
                       const std::string& command) {
  if (lock_path.has_parent_path()) ensure_directory(lock_path.parent_path());
  fd_ = ::open(lock_path.c_str(), O_RDWR | O_CREAT | O_CLOEXEC, 0644);
  if (fd_ < 0) {
    throw IoError(fmt::format("{}: cannot open the lock file ({}); check that the directory is writable",
                              lock_path.string(), std::strerror(errno)));
  }
  if (::flock(fd_, LOCK_EX | LOCK_NB) != 0) {
    const int err = errno;
    const std::string holder = err == EWOULDBLOCK ? describe_holder(fd_) : std::string();
    ::close(fd_);
    fd_ = -1;
    if (err == EWOULDBLOCK) {
      throw OutputBusy(fmt::format("{} is being written by another process: {}; wait for it to finish or stop it, "
                                   "or write to another output (lock file {})",
                                   output.string(), holder, lock_path.string()));
    }
    throw IoError(fmt::format("{}: cannot lock ({}); on NFS the server must support locking (docs/reliability.md)",
                              lock_path.string(), std::strerror(err)));
  }
  const std::string me = nlohmann::json{{"pid", static_cast<int64_t>(::getpid())},
                                        {"host", hostname()},
                                        {"started", utc_now()},
                                        {"command", command}}
                             .dump() +
                         "\n";
  // NOTE: written in place (the lock is on this inode; a rename would put the next writer on another).
  if (::ftruncate(fd_, 0) != 0 || ::pwrite(fd_, me.data(), me.size(), 0) != static_cast<ssize_t>(me.size())) {
    // The lock holds without the note; only the message of a refused writer is poorer.
  }
}

OutputLock::~OutputLock() {
  if (fd_ >= 0) ::close(fd_);
}

}  // namespace dirmoe
