#include "dirmoe/train/checkpoint_file.h"

#include <zlib.h>

#include <algorithm>
#include <cstring>

#include <fmt/format.h>

#include "dirmoe/core/atomic_file.h"
#include "dirmoe/core/error.h"

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

CheckpointIdentity checkpoint_identity(const nlohmann::json& meta, const std::string& where) {
  if (!meta.is_object() || !meta.contains("config") || !meta.contains("step")) {
    throw IoError(fmt::format("{}: checkpoint metadata lacks the config or the step; not written by dirmoe-train", where));
  }
  const nlohmann::json& step = meta.at("step");
  if (!step.is_number_integer() || step.get<int64_t>() < 0) {
    throw IoError(fmt::format("{}: checkpoint metadata has step {}, not a non-negative integer", where, step.dump()));
  }
  if (!meta.at("config").is_object()) {
    throw IoError(fmt::format("{}: checkpoint metadata's config is not a JSON object", where));
  }
  CheckpointIdentity identity;
  identity.config = config_from_json(meta.at("config"), where + " (stored config)");
  identity.step = step.get<int64_t>();
  return identity;
}

}  // namespace dirmoe
