#include "dirmoe/train/run_resume.h"

#include <sstream>

#include <fmt/format.h>
#include <nlohmann/json.hpp>

#include "dirmoe/core/atomic_file.h"
#include "dirmoe/core/error.h"
#include "dirmoe/train/checkpoint.h"
#include "dirmoe/train/checkpoint_file.h"
#include "dirmoe/train/training_state.h"

namespace dirmoe {
namespace {

/// The first place where `a` and `b` differ, as "path: A in the checkpoint, B now"; empty when equal.
std::string first_difference(const nlohmann::json& a, const nlohmann::json& b, const std::string& path) {
  if (a.is_object() && b.is_object()) {
    for (const auto& [key, value] : a.items()) {
      const std::string here = path + "." + key;
      if (!b.contains(key)) return fmt::format("{}: {} in the checkpoint, absent now", here, value.dump());
      const std::string d = first_difference(value, b.at(key), here);
      if (!d.empty()) return d;
    }
    for (const auto& [key, value] : b.items()) {
      if (!a.contains(key)) return fmt::format("{}.{}: absent in the checkpoint, {} now", path, key, value.dump());
    }
    return {};
  }
  return a == b ? std::string() : fmt::format("{}: {} in the checkpoint, {} now", path, a.dump(), b.dump());
}

/// Throws when `meta` was written for another model or router, or for a global batch this run cannot continue.
void check_compatible(const nlohmann::json& meta, const ResumeTargets& t, const std::filesystem::path& path) {
  const std::string difference = resume_config_difference(meta.at("config"), config_to_json(t.config));
  if (!difference.empty()) {
    throw ConfigError(fmt::format("{}: --resume with another model or router config than the checkpoint's ({}); "
                                  "resume with the run's own settings (its config.json, and --set where this "
                                  "revision's defaults differ) or start a new --out directory",
                                  path.string(), difference));
  }
  const TrainConfig& train = t.config.train;
  const int64_t ckpt_world = meta.at("world_size").get<int64_t>();
  if (ckpt_world == t.dist.world_size()) return;
  // Another number of processes continues the run exactly when the global batch is the same:
  // every process draws the global batch and keeps its rows, and the router noise is keyed by
  // global token index.
  const nlohmann::json& then_train = meta.at("config").at("train");
  const int64_t then_batch = then_train.at("batch_size").get<int64_t>();
  const int64_t then_accum = then_train.at("grad_accum").get<int64_t>();
  const int64_t now_world = t.dist.world_size();
  if (then_batch * ckpt_world != train.batch_size * now_world || then_accum != train.grad_accum) {
    throw ConfigError(fmt::format(
        "{}: written by {} process(es) with train.batch_size = {} and train.grad_accum = {} ({} sequences per "
        "micro-batch over all processes), resumed by {} with train.batch_size = {} and train.grad_accum = {}; "
        "to continue the run exactly, keep the global batch: set train.batch_size = {} (it must divide evenly) "
        "and train.grad_accum = {}",
        path.string(), ckpt_world, then_batch, then_accum, then_batch * ckpt_world, now_world, train.batch_size,
        train.grad_accum, static_cast<double>(then_batch * ckpt_world) / static_cast<double>(now_world), then_accum));
  }
}

}  // namespace

std::string resume_config_difference(nlohmann::json then, nlohmann::json now) {
  // How the experts are spread over processes is not part of the model: a checkpoint holds them all.
  for (nlohmann::json* c : {&now, &then}) {
    if (c->contains("model")) c->at("model").erase("expert_parallel");
  }
  // Settings added after a checkpoint was written: the value that does what the writing revision did.
  nlohmann::json& then_router = then.at("router");
  if (then_router.contains("dirmoe") && !then_router.at("dirmoe").contains("alpha_mlp_precision")) {
    then_router["dirmoe"]["alpha_mlp_precision"] = "fp32";  // the α MLP ran in float32 before the setting
  }
  std::string d = first_difference(then.at("model"), now.at("model"), "model");
  if (!d.empty()) return d;
  const nlohmann::json& now_router = now.at("router");
  d = first_difference(then_router.at("type"), now_router.at("type"), "router.type");
  if (!d.empty()) return d;
  // the other routers' sections do not reach this run
  const std::string type = now_router.at("type").get<std::string>();
  if (!then_router.contains(type) || !now_router.contains(type)) return {};
  return first_difference(then_router.at(type), now_router.at(type), "router." + type);
}

std::filesystem::path resume_from_newest_checkpoint(const std::filesystem::path& checkpoint_dir,
                                                    const ResumeTargets& t,
                                                    const std::function<void(const std::string&)>& say) {
  const auto candidates = list_step_checkpoints(checkpoint_dir);
  for (auto it = candidates.rbegin(); it != candidates.rend(); ++it) {
    CheckpointFile file;
    try {
      file = read_checkpoint_file(*it);
    } catch (const IoError& e) {
      say(fmt::format("warning: skipping checkpoint: {}", e.what()));
      continue;
    }
    const nlohmann::json& meta = file.meta;
    check_compatible(meta, t, *it);
    auto load_payload = [&] {
      load_model_payload(t.module, file.payload, it->string());
      load_optimizer_payload(t.optimizer, file.payload, it->string());
    };
    if (t.expert_parallel != nullptr) {
      t.expert_parallel->load_full_model(&t.optimizer, load_payload);
    } else {
      load_payload();
    }
    t.counters.restore(meta);
    // Every rank's sampler is at the same place (each draws the global batch); a resume with more
    // processes than wrote the checkpoint takes rank 0's states for the new ones.
    const nlohmann::json& ranks = meta.at("ranks");
    const size_t r = static_cast<size_t>(t.dist.rank()) < ranks.size() ? static_cast<size_t>(t.dist.rank()) : 0;
    const nlohmann::json& mine = ranks.at(r);
    t.sampler.restore(mine.at("sampler"));
    restore_rng_state(mine.at("rng"));
    say(fmt::format("resumed from {} at step {}", it->string(), t.counters.step));
    return *it;
  }
  say("no checkpoint to resume from; starting at step 0");
  return {};
}

void drop_metrics_after(const std::filesystem::path& metrics_path, int64_t step) {
  if (!std::filesystem::exists(metrics_path)) return;
  std::istringstream in(read_file(metrics_path));
  std::string line, kept;
  while (std::getline(in, line)) {
    if (line.empty()) continue;
    try {
      if (nlohmann::json::parse(line).at("step").get<int64_t>() > step) continue;
    } catch (const std::exception&) {
      continue;  // a line cut by the kill
    }
    kept += line + "\n";
  }
  write_file_atomic(metrics_path, kept);
}

}  // namespace dirmoe
