#pragma once
// summary.json of a finished or stopped dirmoe-train run (rank 0): status, router, steps, tokens, world
// size, device, precision, training tokens/s, final and best validation loss, clipped steps, the parity
// block (parity.h) with the warm-up, the load block (load_tracker.h), the git revision and the parameter
// counts. (A diverged run writes its own summary: nonfinite_guard.h.)
#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "dirmoe/config/config.h"
#include "dirmoe/train/run_counters.h"
#include "dirmoe/train/trainable_model.h"

namespace dirmoe {

/// How the run was set up, besides its config and counters.
struct RunSetup {
  std::string status;        // "finished" | "stopped"
  int64_t world_size = 1;
  int64_t expert_parallel = 1;
  std::string device;        // e.g. "cpu", "cuda:0"
  bool bf16 = false;
  int64_t warmup_steps = 0;  // steps before parity and load are measured
};

/// The summary.json object. Syncs (reads the parity and load accumulators).
nlohmann::json run_summary(const Config& config, const RunCounters& counters, const TrainableModel& model,
                           const RunSetup& setup);

/// The warnings a user must see at the end of the run: compute parity and expert load flags.
std::vector<std::string> run_summary_warnings(const nlohmann::json& summary, const Config& config);

}  // namespace dirmoe
