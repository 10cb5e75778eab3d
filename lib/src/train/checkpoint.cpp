#include "dirmoe/train/checkpoint.h"

#include <algorithm>
#include <fstream>

#include <fmt/format.h>

#include "dirmoe/core/atomic_file.h"
#include "dirmoe/core/error.h"
#include "dirmoe/train/training_state.h"

namespace dirmoe {

std::string step_checkpoint_name(int64_t step) { return fmt::format("step_{:08d}.ckpt", step); }

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
  CheckpointIdentity identity = checkpoint_identity(file.meta, file_path.string());
  LoadedCheckpoint out;
  out.config = std::move(identity.config);
  out.step = identity.step;
  out.model = Decoder(out.config);
  load_model_payload(*out.model, file.payload, file_path.string());
  // Router schedules (DirMoE's τ_z, a_lo, λ^p) as they stood for the last optimiser step before the
  // checkpoint (0-based index step − 1), which is also what validation during training used.
  out.model->set_step(std::max<int64_t>(out.step - 1, 0));
  out.model->to(device);
  out.model->eval();
  file.meta.erase("ranks");  // RNG and sampler states: of use to --resume only
  out.meta = std::move(file.meta);
  return out;
}

}  // namespace dirmoe
