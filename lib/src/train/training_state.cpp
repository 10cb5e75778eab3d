#include "dirmoe/train/training_state.h"

#include <map>
#include <mutex>
#include <vector>

#include <ATen/Context.h>
#include <fmt/format.h>
#include <fmt/ranges.h>
#include <torch/torch.h>

#include "dirmoe/core/error.h"

namespace dirmoe {
namespace {

std::string to_hex(const torch::Tensor& bytes_u8) {
  static const char* digits = "0123456789abcdef";
  const torch::Tensor b = bytes_u8.contiguous().cpu();
  const uint8_t* p = b.data_ptr<uint8_t>();
  std::string out(static_cast<size_t>(b.numel()) * 2, '0');
  for (int64_t i = 0; i < b.numel(); ++i) {
    out[static_cast<size_t>(2 * i)] = digits[p[i] >> 4];
    out[static_cast<size_t>(2 * i + 1)] = digits[p[i] & 15];
  }
  return out;
}

torch::Tensor from_hex(const std::string& hex) {
  TORCH_CHECK(hex.size() % 2 == 0, "RNG state: odd hex length");
  torch::Tensor out = torch::empty({static_cast<int64_t>(hex.size() / 2)}, torch::kUInt8);
  uint8_t* p = out.data_ptr<uint8_t>();
  auto nibble = [](char c) -> uint8_t {
    if (c >= '0' && c <= '9') return static_cast<uint8_t>(c - '0');
    if (c >= 'a' && c <= 'f') return static_cast<uint8_t>(c - 'a' + 10);
    TORCH_CHECK(false, "RNG state: bad hex digit");
  };
  for (size_t i = 0; i < hex.size() / 2; ++i) p[i] = static_cast<uint8_t>(nibble(hex[2 * i]) << 4 | nibble(hex[2 * i + 1]));
  return out;
}

torch::Tensor generator_state(at::Generator gen) {
  std::lock_guard<std::mutex> lock(gen.mutex());
  return gen.get_state();
}

void set_generator_state(at::Generator gen, const torch::Tensor& state) {
  std::lock_guard<std::mutex> lock(gen.mutex());
  gen.set_state(state);
}

}  // namespace

std::string save_training_payload(const torch::nn::Module& model, const torch::optim::Optimizer* optimizer) {
  torch::serialize::OutputArchive archive;
  torch::serialize::OutputArchive model_archive;
  model.save(model_archive);
  archive.write("model", model_archive);
  if (optimizer != nullptr) {
    torch::serialize::OutputArchive optim_archive;
    optimizer->save(optim_archive);
    archive.write("optimizer", optim_archive);
  }
  std::string bytes;
  archive.save_to([&bytes](const void* data, size_t size) -> size_t {
    bytes.append(static_cast<const char*>(data), size);
    return size;
  });
  return bytes;
}

void load_model_payload(torch::nn::Module& model, const std::string& payload, const std::string& origin) {
  try {
    torch::serialize::InputArchive archive;
    archive.load_from(payload.data(), payload.size());
    torch::serialize::InputArchive model_archive;
    archive.read("model", model_archive);
    // NOTE: LibTorch's archive read re-points a tensor of another shape without complaint, so the
    // shapes and dtypes are compared after loading.
    std::map<std::string, std::pair<std::vector<int64_t>, torch::Dtype>> before;
    for (const auto& item : model.named_parameters()) before[item.key()] = {item.value().sizes().vec(), item.value().scalar_type()};
    for (const auto& item : model.named_buffers()) before[item.key()] = {item.value().sizes().vec(), item.value().scalar_type()};
    model.load(model_archive);
    auto check = [&](const std::string& name, const torch::Tensor& t) {
      const auto& [sizes, dtype] = before.at(name);
      if (t.sizes().vec() != sizes || t.scalar_type() != dtype) {
        throw IoError(fmt::format("{}: the checkpoint's '{}' has shape {} {}, this model expects {} {}", origin, name,
                                  fmt::join(t.sizes().vec(), "x"), c10::toString(t.scalar_type()), fmt::join(sizes, "x"),
                                  c10::toString(dtype)));
      }
    };
    for (const auto& item : model.named_parameters()) check(item.key(), item.value());
    for (const auto& item : model.named_buffers()) check(item.key(), item.value());
  } catch (const c10::Error& e) {
    throw IoError(fmt::format("{}: the checkpoint's model does not fit this model: {}", origin, e.what_without_backtrace()));
  }
}

void load_optimizer_payload(torch::optim::Optimizer& optimizer, const std::string& payload, const std::string& origin) {
  try {
    torch::serialize::InputArchive archive;
    archive.load_from(payload.data(), payload.size());
    torch::serialize::InputArchive optim_archive;
    archive.read("optimizer", optim_archive);
    optimizer.load(optim_archive);
  } catch (const c10::Error& e) {
    throw IoError(fmt::format("{}: the checkpoint's optimiser state does not fit: {}", origin, e.what_without_backtrace()));
  }
}

nlohmann::json capture_rng_state() {
  nlohmann::json state;
  state["cpu"] = to_hex(generator_state(at::globalContext().defaultGenerator(torch::kCPU)));
  nlohmann::json cuda = nlohmann::json::array();
  if (torch::cuda::is_available()) {
    for (int64_t i = 0; i < static_cast<int64_t>(torch::cuda::device_count()); ++i) {
      const auto& gen = at::globalContext().defaultGenerator(torch::Device(torch::kCUDA, static_cast<c10::DeviceIndex>(i)));
      cuda.push_back(to_hex(generator_state(gen)));
    }
  }
  state["cuda"] = cuda;
  return state;
}

void restore_rng_state(const nlohmann::json& state) {
  set_generator_state(at::globalContext().defaultGenerator(torch::kCPU), from_hex(state.at("cpu").get<std::string>()));
  if (state.contains("cuda") && torch::cuda::is_available()) {
    const auto& cuda = state.at("cuda");
    const int64_t n = std::min<int64_t>(static_cast<int64_t>(cuda.size()), static_cast<int64_t>(torch::cuda::device_count()));
    for (int64_t i = 0; i < n; ++i) {
      set_generator_state(at::globalContext().defaultGenerator(torch::Device(torch::kCUDA, static_cast<c10::DeviceIndex>(i))),
                          from_hex(cuda[static_cast<size_t>(i)].get<std::string>()));
    }
  }
}

}  // namespace dirmoe
