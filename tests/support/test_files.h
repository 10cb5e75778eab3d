#pragma once
// Scratch folders and byte tensors for the unit tests: one definition each, shared by every test
// file that writes files or hands a string to Python's reference (tests/support/python_reference.h
// passes strings as uint8 tensors).
#include <unistd.h>

#include <filesystem>
#include <string>
#include <vector>

#include <torch/torch.h>

namespace dirmoe::testing {

/// $TMPDIR/dirmoe_test_<name>_<pid>, removed if present and not created: for code that must make
/// the folder itself (a corpus or shard builder refuses to write into a folder it did not make).
inline std::filesystem::path unused_test_path(const std::string& name) {
  const auto path = std::filesystem::temp_directory_path() /
                    ("dirmoe_test_" + name + "_" + std::to_string(::getpid()));
  std::filesystem::remove_all(path);
  return path;
}

/// The same path as unused_test_path(name), created empty.
inline std::filesystem::path fresh_test_dir(const std::string& name) {
  const auto dir = unused_test_path(name);
  std::filesystem::create_directories(dir);
  return dir;
}

/// The bytes of `s` as a uint8 tensor [s.size()].
inline torch::Tensor bytes_tensor(const std::string& s) {
  std::vector<int64_t> values;
  values.reserve(s.size());
  for (const unsigned char c : s) values.push_back(c);
  return torch::tensor(values, torch::kInt64).to(torch::kUInt8);
}

}  // namespace dirmoe::testing
