#pragma once
// dirmoe-train --resume: the newest step checkpoint that reads back whole is loaded into the model,
// the optimiser, the sampler, the RNG streams and the run's counters; older ones are tried when a newer
// one is damaged. A checkpoint of another model or router config is refused; one written by another
// number of processes continues the run exactly when the global batch is the same.
#include <cstdint>
#include <filesystem>
#include <functional>
#include <string>

#include <nlohmann/json.hpp>
#include <torch/nn/module.h>
#include <torch/optim/optimizer.h>

#include "dirmoe/config/config.h"
#include "dirmoe/train/batch_source.h"
#include "dirmoe/train/distributed.h"
#include "dirmoe/train/expert_parallel.h"
#include "dirmoe/train/run_counters.h"

namespace dirmoe {

/// What a resume restores.
struct ResumeTargets {
  const Config& config;
  torch::nn::Module& module;
  torch::optim::Optimizer& optimizer;
  BatchSource& sampler;
  RunCounters& counters;
  DistributedContext& dist;
  ExpertParallel* expert_parallel = nullptr;  // null: every process holds every expert
};

/// Loads the newest valid step checkpoint of `checkpoint_dir` into `targets` and returns its path; empty
/// when there is none (a fresh start). `say` reports skipped files and the outcome. Throws ConfigError
/// for a checkpoint of another model/router config or an incompatible global batch.
std::filesystem::path resume_from_newest_checkpoint(const std::filesystem::path& checkpoint_dir,
                                                    const ResumeTargets& targets,
                                                    const std::function<void(const std::string&)>& say);

/// Where the config a checkpoint was written with (`then`, as in its metadata) and this run's (`now`,
/// config_to_json) differ in what the run computes, as "section.key: A in the checkpoint, B now"; empty
/// when they agree. Compared: the model (less expert_parallel), router.type and that router's section.
/// A setting added after the checkpoint was written takes the value that does what the writing revision
/// did: router.dirmoe.alpha_mlp_precision "fp32".
std::string resume_config_difference(nlohmann::json then, nlohmann::json now);

/// Rewrites `metrics_path` without the lines of steps after `step` (written after the last checkpoint
/// by the interrupted run) or cut by a kill. A missing file is left missing.
void drop_metrics_after(const std::filesystem::path& metrics_path, int64_t step);

}  // namespace dirmoe
