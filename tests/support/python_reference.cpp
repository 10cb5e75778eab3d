#include "python_reference.h"
#include "test_paths.h"

#include <unistd.h>

#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <stdexcept>

#include <torch/serialize.h>

namespace dirmoe::testing {
namespace fs = std::filesystem;

bool python_reference_available() { return fs::exists(configured_python()); }

TensorMap run_python_reference(const std::string& script, const TensorMap& inputs) {
  static int counter = 0;
  const fs::path dir = fs::temp_directory_path() / ("dirmoe_pyref_" + std::to_string(::getpid()) + "_" +
                                                    std::to_string(counter++));
  fs::create_directories(dir);
  const fs::path in_path = dir / "in.pt";
  const fs::path out_path = dir / "out.pt";
  const fs::path log_path = dir / "log.txt";

  c10::Dict<std::string, torch::Tensor> dict;
  for (const auto& [name, tensor] : inputs) dict.insert(name, tensor.detach().cpu().contiguous());
  {
    std::vector<char> bytes = torch::pickle_save(c10::IValue(dict));
    std::ofstream out(in_path, std::ios::binary);
    out.write(bytes.data(), static_cast<std::streamsize>(bytes.size()));
  }
  const std::string script_path = std::string(source_dir()) + "/tests/reference/" + script;
  const std::string command = std::string(configured_python()) + " " + script_path + " " + in_path.string() + " " +
                              out_path.string() + " > " + log_path.string() + " 2>&1";
  const int rc = std::system(command.c_str());
  if (rc != 0 || !fs::exists(out_path)) {
    std::ifstream log(log_path);
    std::string text((std::istreambuf_iterator<char>(log)), std::istreambuf_iterator<char>());
    fs::remove_all(dir);
    throw std::runtime_error("python reference " + script + " failed (rc " + std::to_string(rc) + "):\n" + text);
  }
  std::ifstream in(out_path, std::ios::binary);
  std::vector<char> bytes((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  fs::remove_all(dir);
  auto value = torch::pickle_load(bytes);
  TensorMap result;
  for (const auto& entry : value.toGenericDict()) {
    result[entry.key().toStringRef()] = entry.value().toTensor();
  }
  return result;
}

}  // namespace dirmoe::testing
