#include "dirmoe/train/checkpoint_writer.h"

#include <fmt/format.h>
#include <nlohmann/json.hpp>

#include "dirmoe/core/atomic_file.h"
#include "dirmoe/core/build_info.h"
#include "dirmoe/train/checkpoint.h"
#include "dirmoe/train/checkpoint_file.h"
#include "dirmoe/train/training_state.h"

namespace dirmoe {

CheckpointWriter::CheckpointWriter(std::filesystem::path dir, int64_t keep_last, DistributedContext& dist,
                                   ExpertParallel* expert_parallel)
    : dir_(std::move(dir)), keep_last_(keep_last), dist_(dist), expert_parallel_(expert_parallel) {
  if (dist_.is_main()) ensure_directory(dir_);
}

void link_best_checkpoint(const std::filesystem::path& dir, const std::filesystem::path& checkpoint) {
  const auto tmp = dir / "best.ckpt.tmp";
  std::error_code ec;
  std::filesystem::remove(tmp, ec);
  std::filesystem::create_hard_link(checkpoint, tmp, ec);
  if (ec) std::filesystem::copy_file(checkpoint, tmp, std::filesystem::copy_options::overwrite_existing);
  std::filesystem::rename(tmp, dir / "best.ckpt");
}

std::filesystem::path CheckpointWriter::write_step(const CheckpointSources& sources, bool also_best) {
  const auto path = dir_ / step_checkpoint_name(sources.counters.step);
  write(path, sources, /*all_ranks=*/true);
  if (dist_.is_main()) {
    last_ = path;
    prune_step_checkpoints(dir_, keep_last_);
    if (also_best) link_best_checkpoint(dir_, path);
  }
  return path;
}

void CheckpointWriter::write_best(const CheckpointSources& sources) {
  write(dir_ / "best.ckpt", sources, /*all_ranks=*/false);
}

void CheckpointWriter::write(const std::filesystem::path& path, const CheckpointSources& sources, bool all_ranks) {
  const RunCounters& c = sources.counters;
  dist_.report_progress(c.step, "checkpoint");
  const nlohmann::json mine = {{"sampler", sources.sampler.state()}, {"rng", capture_rng_state()}};
  const std::vector<std::string> rank_states =
      all_ranks ? dist_.gather_to_main(mine.dump(), fmt::format("ckpt_{}", c.step)) : std::vector<std::string>{mine.dump()};
  auto write_on_main = [&] {
    nlohmann::json ranks = nlohmann::json::array();
    for (const auto& r : rank_states) ranks.push_back(nlohmann::json::parse(r));
    const nlohmann::json meta = {
        {"format_version", kCheckpointFormatVersion},
        {"step", c.step},
        {"tokens", c.tokens},
        {"config", config_to_json(sources.config)},
        {"git_revision", git_revision()},
        {"world_size", dist_.world_size()},
        {"trainer", c.trainer_state()},
        {"ranks", ranks},
    };
    write_checkpoint_file(path, meta, save_training_payload(sources.module, sources.optimizer));
  };
  // With sharded experts rank 0 writes the full model, gathered from expert-parallel group 0.
  if (expert_parallel_ != nullptr) {
    expert_parallel_->with_full_model(sources.optimizer, write_on_main);
  } else if (dist_.is_main()) {
    write_on_main();
  }
}

}  // namespace dirmoe
