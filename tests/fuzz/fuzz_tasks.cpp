// Fuzzes the zero-shot task readers of `dirmoe-eval --task-dir`: the first byte picks the task,
// the rest is its file.
#include "dirmoe/eval/task_readers.h"
#include "fuzz_util.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  if (size == 0) return 0;
  const auto& specs = dirmoe::eval::file_task_specs();
  const auto& spec = specs[data[0] % specs.size()];
  const auto dir = dirmoe::fuzz::scratch_dir() / "tasks";
  std::error_code ec;
  std::filesystem::create_directories(dir, ec);
  const auto path = dir / spec.file_name;
  dirmoe::fuzz::write_bytes(path, std::string(reinterpret_cast<const char*>(data + 1), size - 1));
  dirmoe::fuzz::expect_no_crash([&] {
    const dirmoe::eval::Task task = dirmoe::eval::load_task_file(spec.name, dir);
    (void)task;
  });
  std::filesystem::remove(path, ec);
  return 0;
}
