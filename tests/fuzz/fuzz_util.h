#pragma once
// Shared by the libFuzzer targets: a per-process scratch directory the readers' input files are
// written to, splitting one fuzz input into several files, and the contract every reader is held
// to: it returns or throws, it never crashes.
//
// Exceptions: a dirmoe::Error (the message names the file) is the expected way to refuse an input.
// Any other std::exception still reaches the apps' catch and a non-zero exit, so by default it is
// accepted too; with DIRMOE_FUZZ_STRICT=1 it aborts, to find readers whose messages do not name
// the file.
#include <unistd.h>

#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <exception>
#include <filesystem>
#include <fstream>
#include <string>
#include <vector>

#include "dirmoe/core/error.h"

namespace dirmoe::fuzz {

/// A directory private to this process (under /dev/shm when present), removed at exit.
inline const std::filesystem::path& scratch_dir() {
  // NOTE: never destroyed, so that the exit handler below still sees it (a function-local static
  // would be destroyed before a handler registered during its own construction runs).
  static const std::filesystem::path* const dir = [] {
    std::error_code ec;
    const std::string base = std::filesystem::is_directory("/dev/shm", ec)
                                 ? std::string("/dev/shm")
                                 : std::filesystem::temp_directory_path().string();
    std::string pattern = base + "/dirmoe-fuzz-XXXXXX";
    if (mkdtemp(pattern.data()) == nullptr) {
      std::perror("mkdtemp");
      std::abort();
    }
    return new std::filesystem::path(pattern);
  }();
  static const bool cleanup_registered = [] {
    std::atexit([] {
      std::error_code ignored;
      std::filesystem::remove_all(*dir, ignored);
    });
    return true;
  }();
  (void)cleanup_registered;
  return *dir;
}

/// Writes `bytes` to `path` (replacing it).
inline void write_bytes(const std::filesystem::path& path, const std::string& bytes) {
  std::ofstream out(path, std::ios::binary | std::ios::trunc);
  out.write(bytes.data(), static_cast<std::streamsize>(bytes.size()));
  if (!out) {
    std::fprintf(stderr, "cannot write %s\n", path.c_str());
    std::abort();
  }
}

/// The separator between the files packed into one fuzz input (seed files use it too).
inline constexpr const char* kPartSeparator = "\n--8<--\n";

/// Splits `data` into exactly `n` parts at the first n−1 separators; missing parts are empty.
inline std::vector<std::string> split_parts(const uint8_t* data, size_t size, size_t n) {
  const std::string all(reinterpret_cast<const char*>(data), size);
  const std::string sep = kPartSeparator;
  std::vector<std::string> parts;
  size_t start = 0;
  while (parts.size() + 1 < n) {
    const size_t at = all.find(sep, start);
    if (at == std::string::npos) break;
    parts.push_back(all.substr(start, at - start));
    start = at + sep.size();
  }
  parts.push_back(start <= all.size() ? all.substr(start) : std::string());
  parts.resize(n);
  return parts;
}

inline bool strict() {
  static const bool value = [] {
    const char* v = std::getenv("DIRMOE_FUZZ_STRICT");
    return v != nullptr && std::strcmp(v, "0") != 0;
  }();
  return value;
}

/// Runs `read`, accepting a return or a thrown dirmoe::Error (see the file comment for others).
template <typename F>
void expect_no_crash(F&& read) {
  try {
    read();
  } catch (const dirmoe::Error&) {
  } catch (const std::exception& e) {
    if (strict()) {
      std::fprintf(stderr, "reader threw a non-dirmoe exception: %s\n", e.what());
      std::abort();
    }
  }
}

}  // namespace dirmoe::fuzz
