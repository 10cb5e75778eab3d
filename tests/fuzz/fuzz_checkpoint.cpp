// Fuzzes the checkpoint container (checkpoint_file.h) and the metadata every reader takes from
// it (stored config, step). The LibTorch archive inside is handed to torch::load, LibTorch's own
// parser, and is not fuzzed here.
// Input: one flag byte, then the file. With bit 0 set the harness rewrites the trailing CRC-32 to
// match, so mutations reach the length fields and the metadata instead of dying at the checksum.
#include <zlib.h>

#include <cstring>

#include "dirmoe/train/checkpoint_file.h"
#include "fuzz_util.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  if (size == 0) return 0;
  std::string bytes(reinterpret_cast<const char*>(data + 1), size - 1);
  if ((data[0] & 1) && bytes.size() >= 4) {
    const uint32_t crc = static_cast<uint32_t>(
        crc32(crc32(0L, Z_NULL, 0), reinterpret_cast<const Bytef*>(bytes.data()), static_cast<uInt>(bytes.size() - 4)));
    std::memcpy(bytes.data() + bytes.size() - 4, &crc, 4);
  }
  const auto path = dirmoe::fuzz::scratch_dir() / "step_00000001.ckpt";
  dirmoe::fuzz::write_bytes(path, bytes);
  dirmoe::fuzz::expect_no_crash([&] {
    const auto file = dirmoe::read_checkpoint_file(path);
    const auto identity = dirmoe::checkpoint_identity(file.meta, path.string());
    identity.config.validate();
  });
  return 0;
}
