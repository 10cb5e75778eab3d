#pragma once
// The checkpoint container: the self-checking byte layout of a .ckpt file, apart from the LibTorch
// archive it carries (see checkpoint.h for what goes inside).
//
// File layout (format version 1, little-endian):
//   bytes 0..7    magic "DMOECKPT"
//   uint32        format version
//   uint64 N      length of the metadata, then N bytes of UTF-8 JSON
//   uint64 M      length of the payload, then M bytes (a LibTorch archive)
//   uint32        CRC-32 (zlib) of every preceding byte
#include <cstdint>
#include <filesystem>
#include <string>

#include <nlohmann/json.hpp>

#include "dirmoe/config/config.h"

namespace dirmoe {

constexpr uint32_t kCheckpointFormatVersion = 1;

/// A checkpoint file's two parts, as read and verified.
struct CheckpointFile {
  nlohmann::json meta;
  std::string payload;  // LibTorch archive bytes
};

/// Writes the container atomically (temporary name + fsync + rename).
void write_checkpoint_file(const std::filesystem::path& path, const nlohmann::json& meta, const std::string& payload);

/// Reads and verifies a checkpoint. Throws IoError naming the path and the reason when the file
/// is missing, is not a dirmoe checkpoint (foreign magic), has a newer format version, is
/// truncated, or fails its checksum.
CheckpointFile read_checkpoint_file(const std::filesystem::path& path);

/// The metadata every reader of a checkpoint needs: the run's resolved config and its step.
struct CheckpointIdentity {
  Config config;
  int64_t step = 0;
};

/// Reads the stored config and step from checkpoint metadata. Throws IoError (or ConfigError for a
/// stored config this build rejects) naming `where` when they are missing or of the wrong type.
CheckpointIdentity checkpoint_identity(const nlohmann::json& meta, const std::string& where);

}  // namespace dirmoe
