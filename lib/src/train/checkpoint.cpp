#include "dirmoe/train/checkpoint.h"

#include <zlib.h>

#include <algorithm>
#include <cstring>
#include <fstream>

#include <fmt/format.h>

#include "dirmoe/core/atomic_file.h"
#include "dirmoe/core/error.h"
#include "dirmoe/train/training_state.h"

namespace dirmoe {
namespace {

constexpr char kMagic[8] = {'D', 'M', 'O', 'E', 'C', 'K', 'P', 'T'};

template <typename T>
void append_pod(std::string& out, T value) {
  char bytes[sizeof(T)];
  std::memcpy(bytes, &value, sizeof(T));
  out.append(bytes, sizeof(T));
}

template <typename T>
T read_pod(const std::string& data, size_t offset) {
  T value;
  std::memcpy(&value, data.data() + offset, sizeof(T));
  return value;
}

uint32_t crc32_of(const char* data, size_t size) {
  uLong crc = crc32(0L, Z_NULL, 0);
  // zlib's crc32 takes a uInt length: feed large buffers in chunks.
  while (size > 0) {
    const uInt chunk = static_cast<uInt>(std::min<size_t>(size, 1u << 30));
    crc = crc32(crc, reinterpret_cast<const Bytef*>(data), chunk);
    data += chunk;
    size -= chunk;
  }
  return static_cast<uint32_t>(crc);
}

}  // namespace

std::string step_checkpoint_name(int64_t step) { return fmt::format("step_{:08d}.ckpt", step); }

void write_checkpoint_file(const std::filesystem::path& path, const nlohmann::json& meta, const std::string& payload) {
  const std::string meta_text = meta.dump();
  std::string out;
  out.reserve(sizeof(kMagic) + 4 + 8 + meta_text.size() + 8 + payload.size() + 4);
  out.append(kMagic, sizeof(kMagic));
  append_pod<uint32_t>(out, kCheckpointFormatVersion);
  append_pod<uint64_t>(out, meta_text.size());
  out.append(meta_text);
  append_pod<uint64_t>(out, payload.size());
  out.append(payload);
  append_pod<uint32_t>(out, crc32_of(out.data(), out.size()));
  write_file_atomic(path, out);
}

CheckpointFile read_checkpoint_file(const std::filesystem::path& path) {
  const std::string data = read_file(path);
  const std::string where = path.string();
  const size_t header = sizeof(kMagic) + 4 + 8;
  if (data.size() < sizeof(kMagic) || std::memcmp(data.data(), kMagic, sizeof(kMagic)) != 0) {
    throw IoError(fmt::format("{}: not a dirmoe checkpoint (no DMOECKPT header); pass a .ckpt file written by "
                              "dirmoe-train or its run directory",
                              where));
  }
  if (data.size() < header) {
    throw IoError(fmt::format("{}: truncated checkpoint ({} bytes); it cannot be used", where, data.size()));
  }
  const uint32_t version = read_pod<uint32_t>(data, sizeof(kMagic));
  if (version == 0 || version > kCheckpointFormatVersion) {
    throw IoError(fmt::format("{}: checkpoint format version {} is not supported by this build (it reads "
                              "version {}); use a matching dirmoe build",
                              where, version, kCheckpointFormatVersion));
  }
  const uint64_t meta_len = read_pod<uint64_t>(data, sizeof(kMagic) + 4);
  if (meta_len > data.size() - header || data.size() - header - meta_len < 8) {
    throw IoError(fmt::format("{}: truncated checkpoint (metadata claims {} bytes, file has {})", where, meta_len,
                              data.size()));
  }
  const size_t payload_len_at = header + meta_len;
  const uint64_t payload_len = read_pod<uint64_t>(data, payload_len_at);
  const size_t payload_at = payload_len_at + 8;
  if (payload_len > data.size() - payload_at || data.size() - payload_at - payload_len < 4) {
    throw IoError(fmt::format("{}: truncated checkpoint (payload claims {} bytes, {} remain)", where, payload_len,
                              data.size() - payload_at));
  }
  const size_t crc_at = payload_at + payload_len;
  if (crc_at + 4 != data.size()) {
    throw IoError(fmt::format("{}: corrupt checkpoint ({} unexpected trailing bytes)", where, data.size() - crc_at - 4));
  }
  const uint32_t stored_crc = read_pod<uint32_t>(data, crc_at);
  if (stored_crc != crc32_of(data.data(), crc_at)) {
    throw IoError(fmt::format("{}: corrupt checkpoint (CRC-32 mismatch); the file was damaged after it was "
                              "written — use an older checkpoint",
                              where));
  }
  CheckpointFile file;
  try {
    file.meta = nlohmann::json::parse(data.begin() + header, data.begin() + header + meta_len);
  } catch (const nlohmann::json::exception& e) {
    throw IoError(fmt::format("{}: corrupt checkpoint metadata: {}", where, e.what()));
  }
  file.payload = data.substr(payload_at, payload_len);
  return file;
}

std::vector<std::filesystem::path> list_step_checkpoints(const std::filesystem::path& dir) {
  std::vector<std::pair<int64_t, std::filesystem::path>> found;
  std::error_code ec;
  if (!std::filesystem::is_directory(dir, ec)) return {};
  for (const auto& entry : std::filesystem::directory_iterator(dir)) {
    const std::string name = entry.path().filename().string();
    if (name.size() != 18 || name.rfind("step_", 0) != 0 || name.substr(13) != ".ckpt") continue;
    const std::string digits = name.substr(5, 8);
    if (!std::all_of(digits.begin(), digits.end(), [](char c) { return c >= '0' && c <= '9'; })) continue;
    found.emplace_back(std::stoll(digits), entry.path());
  }
  std::sort(found.begin(), found.end());
  std::vector<std::filesystem::path> out;
  for (auto& f : found) out.push_back(f.second);
  return out;
}

void prune_step_checkpoints(const std::filesystem::path& dir, int64_t keep_last) {
  const auto all = list_step_checkpoints(dir);
  const int64_t keep = std::max<int64_t>(1, keep_last);
  for (int64_t i = 0; i + keep < static_cast<int64_t>(all.size()); ++i) {
    std::error_code ec;
    std::filesystem::remove(all[static_cast<size_t>(i)], ec);
  }
}

std::filesystem::path resolve_checkpoint_path(const std::filesystem::path& path) {
  std::error_code ec;
  if (!std::filesystem::is_directory(path, ec)) {
    if (!std::filesystem::exists(path, ec)) {
      throw IoError(fmt::format("{}: no such checkpoint file or run directory", path.string()));
    }
    return path;
  }
  for (const auto& dir : {path / "checkpoints", path}) {
    if (std::filesystem::exists(dir / "best.ckpt", ec)) return dir / "best.ckpt";
    const auto steps = list_step_checkpoints(dir);
    if (!steps.empty()) return steps.back();
  }
  throw IoError(fmt::format("{}: no checkpoint found (expected checkpoints/best.ckpt or checkpoints/step_*.ckpt)",
                            path.string()));
}

LoadedCheckpoint load_checkpoint(const std::filesystem::path& path, const torch::Device& device) {
  const std::filesystem::path file_path = resolve_checkpoint_path(path);
  CheckpointFile file = read_checkpoint_file(file_path);
  if (!file.meta.is_object() || !file.meta.contains("config") || !file.meta.contains("step")) {
    throw IoError(fmt::format("{}: checkpoint metadata lacks the config or the step; not written by dirmoe-train",
                              file_path.string()));
  }
  LoadedCheckpoint out;
  out.config = config_from_json(file.meta.at("config"), file_path.string() + " (stored config)");
  out.step = file.meta.at("step").get<int64_t>();
  out.model = Decoder(out.config);
  load_model_payload(*out.model, file.payload, file_path.string());
  out.model->to(device);
  out.model->eval();
  file.meta.erase("ranks");  // RNG and sampler states: of use to --resume only
  out.meta = std::move(file.meta);
  return out;
}

}  // namespace dirmoe
