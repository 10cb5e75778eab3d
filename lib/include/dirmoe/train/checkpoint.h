#pragma once
// Training checkpoints: one self-checking file per checkpoint.
//
// The container layout is in checkpoint_file.h; its payload is a LibTorch archive
// (torch::serialize) with sub-archives "model" (parameters and buffers, router schedule/controller
// buffers included) and "optimizer" (AdamW moments and step counts).
// The metadata JSON holds: format_version, step, tokens, config (the resolved config),
// git_revision, world_size, trainer state (best validation loss, parity accumulators, ...) and,
// per rank, the data sampler state and the RNG states (CPU, and CUDA when present).
//
// A run directory keeps checkpoints under DIR/checkpoints/: step_00001000.ckpt (the last
// train.keep_last are kept) and best.ckpt (lowest validation loss so far). Every file is written
// to a temporary name and renamed, so a kill never leaves a partial checkpoint under a real name.
#include <cstdint>
#include <filesystem>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>
#include <torch/types.h>

#include "dirmoe/config/config.h"
#include "dirmoe/train/checkpoint_file.h"
#include "dirmoe/model/decoder.h"

namespace dirmoe {

/// What eval and analyze need: the run's resolved config and its model with trained weights.
struct LoadedCheckpoint {
  Config config;
  Decoder model{nullptr};
  int64_t step = 0;
  nlohmann::json meta;
};

/// Loads a checkpoint (a .ckpt file, or a run directory: its best.ckpt if present, else the latest
/// step_*.ckpt) and builds the Decoder from the stored config on `device`, in eval mode, with the
/// router schedules set to the checkpoint's last training step.
LoadedCheckpoint load_checkpoint(const std::filesystem::path& path, const torch::Device& device = torch::kCPU);

/// Resolves a run directory or a file to the checkpoint file load_checkpoint() would read.
std::filesystem::path resolve_checkpoint_path(const std::filesystem::path& path);

/// step_*.ckpt files in `dir`, oldest first (by the step in the name).
std::vector<std::filesystem::path> list_step_checkpoints(const std::filesystem::path& dir);

/// Deletes all but the newest `keep_last` step checkpoints (best.ckpt is never touched).
void prune_step_checkpoints(const std::filesystem::path& dir, int64_t keep_last);

/// File name of the step checkpoint for `step`: "step_%08d.ckpt".
std::string step_checkpoint_name(int64_t step);

}  // namespace dirmoe
