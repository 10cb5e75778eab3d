#include "dirmoe/eval/safetensors.h"

#include <cstring>
#include <fstream>
#include <set>

#include <nlohmann/json.hpp>
#include <torch/torch.h>

#include "dirmoe/core/atomic_file.h"
#include "dirmoe/core/error.h"

namespace dirmoe::eval {
namespace {

const std::vector<std::pair<torch::ScalarType, std::string>>& dtype_names() {
  static const std::vector<std::pair<torch::ScalarType, std::string>> names = {
      {torch::kFloat64, "F64"}, {torch::kFloat32, "F32"}, {torch::kFloat16, "F16"}, {torch::kBFloat16, "BF16"},
      {torch::kInt64, "I64"},   {torch::kInt32, "I32"},   {torch::kInt16, "I16"},   {torch::kInt8, "I8"},
      {torch::kUInt8, "U8"},    {torch::kBool, "BOOL"}};
  return names;
}

std::string dtype_name(torch::ScalarType t, const std::string& tensor) {
  for (const auto& [type, name] : dtype_names()) {
    if (type == t) return name;
  }
  throw IoError("safetensors: tensor " + tensor + " has an unsupported dtype " + std::string(c10::toString(t)));
}

void check_little_endian() {
  const uint16_t probe = 1;
  uint8_t first = 0;
  std::memcpy(&first, &probe, 1);
  TORCH_CHECK(first == 1, "safetensors: big-endian hosts are not supported");
}

}  // namespace

void write_safetensors(const std::filesystem::path& path, const NamedTensors& tensors,
                       const std::map<std::string, std::string>& metadata) {
  check_little_endian();
  nlohmann::ordered_json header = nlohmann::ordered_json::object();
  if (!metadata.empty()) header["__metadata__"] = metadata;
  std::vector<torch::Tensor> contiguous;
  std::set<std::string> seen;
  uint64_t offset = 0;
  for (const auto& [name, tensor] : tensors) {
    if (!seen.insert(name).second) throw IoError("safetensors: duplicate tensor name " + name);
    torch::Tensor t = tensor.detach().to(torch::kCPU).contiguous();
    const uint64_t bytes = static_cast<uint64_t>(t.numel()) * t.element_size();
    header[name] = {{"dtype", dtype_name(t.scalar_type(), name)},
                    {"shape", t.sizes().vec()},
                    {"data_offsets", {offset, offset + bytes}}};
    offset += bytes;
    contiguous.push_back(t);
  }
  std::string json = header.dump();
  while (json.size() % 8 != 0) json += ' ';
  AtomicFile file(path);
  {
    std::ofstream out(file.temp_path(), std::ios::binary);
    if (!out) throw IoError("cannot write " + file.temp_path().string());
    const uint64_t n = json.size();
    out.write(reinterpret_cast<const char*>(&n), 8);  // little-endian host (checked above)
    out.write(json.data(), static_cast<std::streamsize>(json.size()));
    for (const auto& t : contiguous) {
      out.write(static_cast<const char*>(t.data_ptr()), static_cast<std::streamsize>(t.numel() * t.element_size()));
    }
    if (!out) throw IoError("failed writing " + file.temp_path().string() + " (disk full?)");
  }
  file.commit();
}

std::map<std::string, torch::Tensor> read_safetensors(const std::filesystem::path& path,
                                                      std::map<std::string, std::string>* metadata) {
  check_little_endian();
  const std::string bytes = read_file(path);
  auto bad = [&](const std::string& why) { return IoError(path.string() + ": not a safetensors file (" + why + ")"); };
  if (bytes.size() < 8) throw bad("shorter than its header length");
  uint64_t n = 0;
  std::memcpy(&n, bytes.data(), 8);
  if (n > bytes.size() - 8) throw bad("header length beyond the end of the file");
  nlohmann::json header;
  try {
    header = nlohmann::json::parse(bytes.substr(8, n));
  } catch (const nlohmann::json::exception& e) {
    throw bad(std::string("header is not JSON: ") + e.what());
  }
  const size_t data_start = 8 + n;
  std::map<std::string, torch::Tensor> out;
  for (const auto& [name, info] : header.items()) {
    if (name == "__metadata__") {
      if (metadata) *metadata = info.get<std::map<std::string, std::string>>();
      continue;
    }
    torch::ScalarType type = torch::kFloat32;
    bool found = false;
    const std::string dtype = info.at("dtype").get<std::string>();
    for (const auto& [t, s] : dtype_names()) {
      if (s == dtype) {
        type = t;
        found = true;
      }
    }
    if (!found) throw bad("tensor " + name + " has unsupported dtype " + dtype);
    const auto shape = info.at("shape").get<std::vector<int64_t>>();
    const auto offsets = info.at("data_offsets").get<std::vector<uint64_t>>();
    if (offsets.size() != 2 || offsets[1] < offsets[0] || data_start + offsets[1] > bytes.size()) {
      throw bad("tensor " + name + " has data offsets outside the file");
    }
    torch::Tensor t = torch::empty(shape, torch::TensorOptions().dtype(type));
    if (static_cast<uint64_t>(t.numel()) * t.element_size() != offsets[1] - offsets[0]) {
      throw bad("tensor " + name + " has a byte size that does not match its shape");
    }
    std::memcpy(t.data_ptr(), bytes.data() + data_start + offsets[0], offsets[1] - offsets[0]);
    out[name] = t;
  }
  return out;
}

}  // namespace dirmoe::eval
