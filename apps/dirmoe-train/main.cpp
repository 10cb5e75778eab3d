// dirmoe-train: train one config.
//   dirmoe-train --config FILE --out DIR [--set a.b=v ...] [--resume]
//   torchrun --no-python --nproc-per-node N dirmoe-train ...   (data parallel, c10d; with
//     --set model.expert_parallel=N the experts are sharded over N processes, docs/parallel.md)
// Exit codes: 0 finished, or stopped cleanly by SIGINT/SIGTERM after writing a checkpoint;
// 1 error (message on stderr); 2 usage; 3 a loss term became NaN/Inf (the last good checkpoint is kept);
// 4 a peer stopped answering (train.collective_timeout_s; the message names the collective and the ranks).
#include <unistd.h>

#include <atomic>
#include <csignal>
#include <cstdlib>
#include <filesystem>
#include <iostream>

#include <CLI/CLI.hpp>
#include <fmt/format.h>

#include "dirmoe/config/config.h"
#include "dirmoe/core/atomic_file.h"
#include "dirmoe/core/cpu_caching_allocator.h"
#include "dirmoe/core/error.h"
#include "dirmoe/core/output_lock.h"
#include "dirmoe/train/data_batches.h"
#include "dirmoe/train/trainer.h"

namespace {

std::atomic<bool> g_stop_requested{false};

extern "C" void on_stop_signal(int /*signal*/) { g_stop_requested.store(true); }

}  // namespace

int main(int argc, char** argv) {
  // Past a file-size limit (ulimit -f) a write then fails with EFBIG and is reported with the
  // file's name, instead of SIGXFSZ killing the process in the middle of it.
  std::signal(SIGXFSZ, SIG_IGN);
  CLI::App app{"Train one dirmoe config (decoder + router) on token shards written by dirmoe-data."};
  std::string config_path;
  std::string out_dir;
  std::vector<std::string> overrides;
  bool resume = false;
  app.add_option("--config", config_path, "JSON config (experiments/configs/*.json)")->required();
  app.add_option("--out", out_dir, "run directory: config.json, metrics.jsonl, checkpoints/, summary.json")->required();
  app.add_option("--set", overrides, "override a config value, e.g. --set train.max_steps=200 (repeatable)");
  app.add_flag("--resume", resume, "continue from the newest checkpoint in --out (exactly, on CPU)");
  CLI11_PARSE(app, argc, argv);

  try {
    // Steps allocate the same large tensors again and again: keep them instead of page-faulting.
    dirmoe::install_cpu_caching_allocator();
    dirmoe::Config config = dirmoe::resolve_config(config_path, overrides);
    const char* local_rank_env = std::getenv("LOCAL_RANK");
    const int64_t local_rank = local_rank_env ? std::atoll(local_rank_env) : 0;
    const torch::Device device = dirmoe::resolve_train_device(config.train, local_rank);
    // One writer per run directory: rank 0 (torchrun's RANK) holds it from before its first write until
    // the process ends, before the process group forms, so a refused run never waits for its peers.
    const char* rank_env = std::getenv("RANK");
    std::unique_ptr<dirmoe::OutputLock> lock;
    if (rank_env == nullptr || std::atoll(rank_env) == 0) {
      lock = std::make_unique<dirmoe::OutputLock>(dirmoe::OutputLock::for_directory(out_dir), out_dir,
                                                  dirmoe::OutputLock::command_line(argc, argv));
    }

    auto dist = dirmoe::DistributedContext::from_environment(device, config.train.collective_timeout_s);
    // Data before the model: its manifest fixes model.vocab_size when the config leaves it at 0.
    dirmoe::TrainingData data = dirmoe::open_training_data(config, dist->world_size());
    const std::filesystem::path out(out_dir);
    if (dist->is_main()) {
      dirmoe::ensure_directory(out);
      dirmoe::write_file_atomic(out / "config.json", dirmoe::config_report_json(config));
    }

    // The model is initialised from train.seed, identically on every rank.
    torch::manual_seed(config.train.seed);
    dirmoe::Decoder decoder(config);

    std::signal(SIGINT, on_stop_signal);
    std::signal(SIGTERM, on_stop_signal);
    dirmoe::TrainerIo io;
    io.out_dir = out;
    io.resume = resume;
    io.stop_requested = &g_stop_requested;
    io.dist = dist.get();
    io.log = &std::cerr;
    io.log_is_tty = ::isatty(STDERR_FILENO) != 0;
    if (dist->is_main()) {
      std::cerr << fmt::format("dirmoe-train: router {} | {} process(es) ({}){} | device {} | vocab {} | out {}\n",
                               config.router.type, dist->world_size(), dist->backend_name(),
                               config.model.expert_parallel > 1
                                   ? fmt::format(", experts over {} per group", config.model.expert_parallel)
                                   : std::string(),
                               device.str(), config.model.vocab_size, out.string());
    }
    dirmoe::Trainer trainer(config, dirmoe::make_trainable(decoder), std::move(data.train), std::move(data.validation), io);
    const dirmoe::TrainResult result = trainer.run();
    if (dist->is_main()) {
      std::cerr << fmt::format("dirmoe-train: {} at step {}; summary in {}\n", result.status, result.steps_done,
                               (out / "summary.json").string());
    }
    return 0;
  } catch (const dirmoe::CollectiveTimeout& e) {
    std::cerr << "dirmoe-train: " << e.what() << "\n" << std::flush;
    // NOTE: no clean shutdown: tearing down a process group whose peer hangs could hang in turn.
    std::_Exit(4);
  } catch (const dirmoe::TrainingDiverged& e) {
    std::cerr << "dirmoe-train: " << e.what() << "\n";
    return 3;
  } catch (const std::exception& e) {
    std::cerr << "dirmoe-train: error: " << e.what() << "\n";
    return 1;
  }
}
