#include "dirmoe/train/trainer.h"

#include <algorithm>
#include <chrono>
#include <cmath>
#include <fstream>
#include <iostream>
#include <limits>
#include <sstream>
#include <thread>

#include <fmt/format.h>
#include <fmt/ranges.h>
#include <torch/torch.h>

#include "dirmoe/core/atomic_file.h"
#include "dirmoe/core/build_info.h"
#include "dirmoe/core/device.h"
#include "dirmoe/stats/routing_report.h"
#include "dirmoe/stats/routing_stats_accumulator.h"
#include "dirmoe/stats/routing_stats_merge.h"
#include "dirmoe/stats/routing_time_series.h"
#include "dirmoe/train/checkpoint.h"
#include "dirmoe/train/expert_parallel.h"
#include "dirmoe/train/load_tracker.h"
#include "dirmoe/train/lr_schedule.h"
#include "dirmoe/train/optimizer.h"
#include "dirmoe/train/parity.h"
#include "dirmoe/train/training_progress.h"
#include "dirmoe/train/train_step.h"
#include "dirmoe/train/training_state.h"

namespace dirmoe {
namespace {

using Clock = std::chrono::steady_clock;

double seconds_since(Clock::time_point t0) {
  return std::chrono::duration<double>(Clock::now() - t0).count();
}

bool is_every(int64_t step, int64_t every) { return every > 0 && step % every == 0; }

double json_number(const nlohmann::json& j, const char* key, double fallback) {
  if (!j.contains(key) || j.at(key).is_null()) return fallback;
  return j.at(key).get<double>();
}

nlohmann::json finite_or_null(double v) { return std::isfinite(v) ? nlohmann::json(v) : nlohmann::json(nullptr); }

}  // namespace

torch::Device resolve_train_device(const TrainConfig& train, int64_t local_rank) {
  return resolve_device(train.device, "train.device", local_rank);
}

bool use_bf16_autocast(const TrainConfig& train, const torch::Device& device) {
  if (train.precision == "fp32") return false;
  if (train.precision == "bf16") {
    if (!device.is_cuda()) throw ConfigError("train.precision = \"bf16\" needs a CUDA device; use fp32 or auto on CPU");
    return true;
  }
  return device.is_cuda();  // "auto"
}

struct Trainer::State {
  Config config;
  std::shared_ptr<TrainableModel> model;
  std::unique_ptr<BatchSource> source;
  std::vector<torch::Tensor> val_batches;
  TrainerIo io;
  std::unique_ptr<DistributedContext> own_dist;
  DistributedContext* dist = nullptr;
  std::unique_ptr<ExpertParallel> ep;  // model.expert_parallel > 1: the expert shards and their groups
  torch::Device device = torch::kCPU;
  bool bf16 = false;
  std::unique_ptr<torch::optim::AdamW> optimizer;
  std::vector<torch::Tensor> params;
  int64_t n_layers = 0;

  int64_t step = 0;    // completed optimiser steps
  int64_t tokens = 0;  // tokens trained on, all ranks
  double best_val = std::numeric_limits<double>::infinity();
  int64_t best_step = -1;
  double last_val = std::numeric_limits<double>::quiet_NaN();
  ParityTracker parity;
  LoadTracker load;          // tokens per expert after warm-up, for the load block of summary.json
  double train_seconds = 0;  // wall time inside training steps (excludes eval and checkpoints)
  double total_flops = 0;    // Σ over log windows of FLOPs/token × tokens
  bool flops_known = true;
  double clipped_steps = 0;  // steps whose gradient norm exceeded train.grad_clip (host copy at log steps)
  torch::Tensor clipped_steps_device;  // () float64, the running count on the device

  // Non-finite detection, accumulated on the device (terms: lm_loss, aux/<name>..., grad_norm).
  std::vector<std::string> term_names;
  torch::Tensor nonfinite_N;       // (N) bool
  torch::Tensor first_bad_step_N;  // (N) int64, -1 while finite

  std::filesystem::path ckpt_dir;
  std::filesystem::path last_ckpt;
  std::ostream* log = &std::cerr;
  std::unique_ptr<TrainingProgress> progress;

  // Routing time series (train.stats_every > 0, rank 0 only): the accumulator is the model's sink
  // only during the forwards of every stats_every-th step (all its micro-batches, this rank's rows),
  // and each such step appends one row, then resets it. Other steps pay nothing.
  std::unique_ptr<RoutingStatsAccumulator> stats_acc;
  std::unique_ptr<RoutingTimeSeriesWriter> stats_writer;

  bool main() const { return dist->is_main(); }
  void say(const std::string& text) {
    if (main()) progress->message(text);
  }
};

Trainer::Trainer(Config config, std::shared_ptr<TrainableModel> model, std::unique_ptr<BatchSource> train_batches,
                 std::vector<torch::Tensor> validation_batches, TrainerIo io)
    : s_(std::make_unique<State>()) {
  State& s = *s_;
  s.config = std::move(config);
  s.model = std::move(model);
  s.source = std::move(train_batches);
  s.val_batches = std::move(validation_batches);
  s.io = std::move(io);
  if (s.io.log != nullptr) s.log = s.io.log;
  s.progress = std::make_unique<TrainingProgress>(*s.log, s.io.log_is_tty);
  if (s.io.dist == nullptr) {
    s.own_dist = std::make_unique<DistributedContext>();
    s.dist = s.own_dist.get();
  } else {
    s.dist = s.io.dist;
  }
  const TrainConfig& train = s.config.train;
  TORCH_CHECK(s.model && s.source, "Trainer needs a model and a batch source");

  // Threads: train.threads, else the cores shared evenly by the processes on this node.
  int64_t threads = train.threads;
  if (threads <= 0) {
    const char* local_world = std::getenv("LOCAL_WORLD_SIZE");
    const int64_t procs = std::max<int64_t>(1, local_world ? std::atoll(local_world) : 1);
    threads = std::max<int64_t>(1, static_cast<int64_t>(std::thread::hardware_concurrency()) / procs);
  }
  at::set_num_threads(static_cast<int>(threads));

  s.device = resolve_train_device(train, s.dist->local_rank());
  s.bf16 = use_bf16_autocast(train, s.device);
  s.n_layers = s.config.model.n_layers;
  s.parity = ParityTracker(s.n_layers, static_cast<double>(s.config.model.n_experts_active), train.parity_tolerance);
  s.load = LoadTracker(s.n_layers, s.config.model.n_experts, kDefaultLoadThreshold);

  torch::nn::Module& module = s.model->module();
  module.to(s.device);
  module.train();
  if (s.config.model.expert_parallel > 1) {
    // NOTE: every process built the full model from the same seed; each now keeps its shard, so the
    // experts start exactly as in a single process.
    s.ep = std::make_unique<ExpertParallel>(*s.dist, s.config.model.expert_parallel, s.config.model.n_experts);
    s.ep->shard(*s.model);
    s.ep->broadcast(module);
  } else {
    s.dist->broadcast_module(module);
  }
  // Batch-level router losses (balance losses, ReMoE's L1) over the global batch, as in one process.
  if (s.dist->active()) s.model->set_batch_mean_reducer(make_batch_mean_reducer(*s.dist));
  s.optimizer = make_optimizer(module, train);
  for (auto& p : module.parameters()) {
    if (p.requires_grad()) s.params.push_back(p);
  }
  // NOTE: the model was initialised from train.seed (identically on every rank, and broadcast
  // anyway); from here each rank draws its own router noise from seed + rank offset.
  torch::manual_seed(train.seed + 1000003ULL * static_cast<uint64_t>(s.dist->rank()));

  s.ckpt_dir = s.io.out_dir / "checkpoints";
  if (s.main()) ensure_directory(s.ckpt_dir);

  if (s.io.resume) {
    const auto candidates = list_step_checkpoints(s.ckpt_dir);
    bool loaded = false;
    for (auto it = candidates.rbegin(); it != candidates.rend() && !loaded; ++it) {
      CheckpointFile file;
      try {
        file = read_checkpoint_file(*it);
      } catch (const IoError& e) {
        s.say(fmt::format("warning: skipping checkpoint: {}", e.what()));
        continue;
      }
      const nlohmann::json& meta = file.meta;
      nlohmann::json now = config_to_json(s.config);
      nlohmann::json then = meta.at("config");
      // How the experts are spread over processes is not part of the model: a checkpoint holds them all.
      for (nlohmann::json* c : {&now, &then}) {
        if (c->contains("model")) c->at("model").erase("expert_parallel");
      }
      for (const char* section : {"model", "router"}) {
        if (then.at(section) != now.at(section)) {
          throw ConfigError(fmt::format("{}: --resume with a different '{}' config than the checkpoint's; resume "
                                        "with the run's own config.json or start a new --out directory",
                                        it->string(), section));
        }
      }
      const int64_t ckpt_world = meta.at("world_size").get<int64_t>();
      if (ckpt_world != s.dist->world_size()) {
        // Another number of processes continues the run exactly when the global batch is the same:
        // every process draws the global batch and keeps its rows, and the router noise is keyed by
        // global token index.
        const nlohmann::json& then_train = meta.at("config").at("train");
        const int64_t then_batch = then_train.at("batch_size").get<int64_t>();
        const int64_t then_accum = then_train.at("grad_accum").get<int64_t>();
        const int64_t now_world = s.dist->world_size();
        if (then_batch * ckpt_world != train.batch_size * now_world || then_accum != train.grad_accum) {
          throw ConfigError(fmt::format(
              "{}: written by {} process(es) with train.batch_size = {} and train.grad_accum = {} ({} sequences per "
              "micro-batch over all processes), resumed by {} with train.batch_size = {} and train.grad_accum = {}; "
              "to continue the run exactly, keep the global batch: set train.batch_size = {} (it must divide evenly) "
              "and train.grad_accum = {}",
              it->string(), ckpt_world, then_batch, then_accum, then_batch * ckpt_world, now_world, train.batch_size,
              train.grad_accum, static_cast<double>(then_batch * ckpt_world) / static_cast<double>(now_world),
              then_accum));
        }
      }
      auto load_payload = [&] {
        load_model_payload(module, file.payload, it->string());
        load_optimizer_payload(*s.optimizer, file.payload, it->string());
      };
      if (s.ep) {
        s.ep->load_full_model(s.optimizer.get(), load_payload);
      } else {
        load_payload();
      }
      s.step = meta.at("step").get<int64_t>();
      s.tokens = meta.at("tokens").get<int64_t>();
      const nlohmann::json& tr = meta.at("trainer");
      s.best_val = json_number(tr, "best_val_loss", std::numeric_limits<double>::infinity());
      s.best_step = tr.value("best_step", int64_t{-1});
      s.last_val = json_number(tr, "last_val_loss", std::numeric_limits<double>::quiet_NaN());
      s.train_seconds = tr.value("train_seconds", 0.0);
      s.total_flops = tr.value("total_flops", 0.0);
      s.flops_known = tr.value("flops_known", true);
      s.clipped_steps = tr.value("clipped_steps", 0.0);
      s.parity.restore(tr.at("parity"));
      s.load.restore(tr.value("load", nlohmann::json::object()));
      // Every rank's sampler is at the same place (each draws the global batch); a resume with more
      // processes than wrote the checkpoint takes rank 0's states for the new ones.
      const nlohmann::json& ranks = meta.at("ranks");
      const size_t r = static_cast<size_t>(s.dist->rank()) < ranks.size() ? static_cast<size_t>(s.dist->rank()) : 0;
      const nlohmann::json& mine = ranks.at(r);
      s.source->restore(mine.at("sampler"));
      restore_rng_state(mine.at("rng"));
      s.last_ckpt = *it;
      loaded = true;
      s.say(fmt::format("resumed from {} at step {}", it->string(), s.step));
    }
    if (!loaded) s.say("no checkpoint to resume from; starting at step 0");
    // Drop metric lines the interrupted run wrote after its last checkpoint.
    const auto metrics_path = s.io.out_dir / "metrics.jsonl";
    if (s.main() && std::filesystem::exists(metrics_path)) {
      std::istringstream in(read_file(metrics_path));
      std::string line, kept;
      while (std::getline(in, line)) {
        if (line.empty()) continue;
        try {
          if (nlohmann::json::parse(line).at("step").get<int64_t>() > s.step) continue;
        } catch (const std::exception&) {
          continue;  // a line cut by the kill
        }
        kept += line + "\n";
      }
      write_file_atomic(metrics_path, kept);
    }
  }
}

Trainer::~Trainer() = default;

int64_t Trainer::step() const { return s_->step; }

double Trainer::validation_loss() {
  State& s = *s_;
  if (s.val_batches.empty()) return std::numeric_limits<double>::quiet_NaN();
  torch::nn::Module& module = s.model->module();
  // Evaluation must not move the training RNG streams (resume exactness).
  const nlohmann::json rng = capture_rng_state();
  module.eval();
  torch::NoGradGuard no_grad;
  torch::Tensor sum = torch::zeros({}, torch::TensorOptions().dtype(torch::kFloat64).device(s.device));
  int64_t count = 0;
  const int64_t T = s.config.model.seq_len;
  const int64_t W = s.dist->world_size();
  for (const auto& batch_cpu : s.val_batches) {
    // With W processes each scores its share of the rows and the sums are added up: the same
    // windows and the same loss as one process, at 1/W of the work each.
    TORCH_CHECK(batch_cpu.size(0) % W == 0, "validation batch of ", batch_cpu.size(0), " rows for ", W,
                " processes: the rows must divide evenly");
    const int64_t share = batch_cpu.size(0) / W;
    const torch::Tensor batch = batch_cpu.narrow(0, s.dist->rank() * share, share).to(s.device);
    const int64_t t = std::min<int64_t>(T, batch.size(1) - 1);
    const torch::Tensor inputs_BT = batch.narrow(1, 0, t);
    const torch::Tensor targets_BT = batch.narrow(1, 1, t);
    DecoderOutput out;
    {
      AutocastScope autocast(s.bf16);
      out = s.model->forward(inputs_BT);
    }
    const int64_t V = out.logits_BTV.size(-1);
    sum += torch::nn::functional::cross_entropy(
               out.logits_BTV.to(torch::kFloat32).reshape({-1, V}), targets_BT.reshape({-1}),
               torch::nn::functional::CrossEntropyFuncOptions().reduction(torch::kSum))
               .to(torch::kFloat64);
    count += targets_BT.numel();
  }
  module.train();
  restore_rng_state(rng);
  if (W > 1) {
    torch::Tensor totals = torch::stack({sum, torch::full({}, static_cast<double>(count), sum.options())});
    s.dist->sum_(totals);
    sum = totals[0];
    count = static_cast<int64_t>(totals[1].item<double>());
  }
  return sum.item<double>() / static_cast<double>(count);
}

TrainResult Trainer::run() {
  State& s = *s_;
  const TrainConfig& train = s.config.train;
  torch::nn::Module& module = s.model->module();
  const int64_t B = train.batch_size;
  const int64_t A = train.grad_accum;
  const int64_t W = s.dist->world_size();
  const int64_t T = s.config.model.seq_len;
  const int64_t warmup = warmup_steps(train);
  const auto fopts = torch::TensorOptions().dtype(torch::kFloat32).device(s.device);
  const auto metrics_path = s.io.out_dir / "metrics.jsonl";

  std::ofstream metrics;
  if (s.main()) {
    metrics.open(metrics_path, std::ios::app);
    if (!metrics) throw IoError(fmt::format("{}: cannot open for writing", metrics_path.string()));
  }

  auto write_checkpoint = [&](const std::filesystem::path& path, bool all_ranks) {
    nlohmann::json mine = {{"sampler", s.source->state()}, {"rng", capture_rng_state()}};
    std::vector<std::string> rank_states;
    if (all_ranks) {
      rank_states = s.dist->gather_to_main(mine.dump(), fmt::format("ckpt_{}", s.step));
    } else {
      rank_states = {mine.dump()};
    }
    auto write_on_main = [&] {
      nlohmann::json ranks = nlohmann::json::array();
      for (const auto& r : rank_states) ranks.push_back(nlohmann::json::parse(r));
      nlohmann::json meta = {
          {"format_version", kCheckpointFormatVersion},
          {"step", s.step},
          {"tokens", s.tokens},
          {"config", config_to_json(s.config)},
          {"git_revision", git_revision()},
          {"world_size", W},
          {"trainer",
           {{"best_val_loss", finite_or_null(s.best_val)},
            {"best_step", s.best_step},
            {"last_val_loss", finite_or_null(s.last_val)},
            {"train_seconds", s.train_seconds},
            {"total_flops", s.total_flops},
            {"flops_known", s.flops_known},
            {"clipped_steps", s.clipped_steps},
            {"parity", s.parity.state()},
            {"load", s.load.state()}}},
          {"ranks", ranks},
      };
      write_checkpoint_file(path, meta, save_training_payload(module, s.optimizer.get()));
    };
    // With sharded experts rank 0 writes the full model, gathered from expert-parallel group 0.
    if (s.ep) {
      s.ep->with_full_model(s.optimizer.get(), write_on_main);
    } else if (s.main()) {
      write_on_main();
    }
  };

  auto check_finite = [&]() {
    // Host sync: only at log / eval / checkpoint steps.
    if (!s.nonfinite_N.defined()) return;
    torch::Tensor bad = s.nonfinite_N.to(torch::kFloat32);
    s.dist->max_(bad);
    if (bad.max().item<float>() == 0.0f) return;
    const torch::Tensor bad_cpu = s.nonfinite_N.cpu();
    const torch::Tensor first_cpu = s.first_bad_step_N.cpu();
    std::string which = "a loss term on another rank";
    int64_t at_step = -1;
    for (size_t i = 0; i < s.term_names.size(); ++i) {
      if (bad_cpu[static_cast<int64_t>(i)].item<bool>()) {
        const int64_t st = first_cpu[static_cast<int64_t>(i)].item<int64_t>();
        if (at_step < 0 || st < at_step) {
          at_step = st;
          which = s.term_names[i];
        }
      }
    }
    // Every term that went bad at that first step: a NaN in a router's logits shows up in its own
    // auxiliary losses as well as in lm_loss, which tells it apart from a fault in the LM path.
    std::vector<std::string> all_at_step;
    for (size_t i = 0; i < s.term_names.size(); ++i) {
      if (bad_cpu[static_cast<int64_t>(i)].item<bool>() && first_cpu[static_cast<int64_t>(i)].item<int64_t>() == at_step) {
        all_at_step.push_back(s.term_names[i]);
      }
    }
    const std::string where = s.last_ckpt.empty() ? std::string("none was written yet")
                                                   : s.last_ckpt.string();
    if (s.main()) {
      nlohmann::json summary = {{"status", "diverged"}, {"bad_term", which}, {"bad_terms", all_at_step},
                                {"bad_step", at_step}, {"steps", s.step}, {"last_good_checkpoint", where}};
      write_file_atomic(s.io.out_dir / "summary.json", summary.dump(2) + "\n");
    }
    throw TrainingDiverged(fmt::format(
        "training diverged: loss term '{}' became NaN or Inf at step {} (rank {}; all terms non-finite at that step: "
        "{}); stopped at step {}. The last good checkpoint: {}. Lower train.lr or raise train.warmup_frac and resume "
        "with --resume",
        which, at_step, s.dist->rank(), fmt::join(all_at_step, ", "), s.step, where));
  };

  // Every process records its own rows; rank 0 adds the others' counts and writes the file.
  if (train.stats_every > 0 && !s.stats_acc) {
    RoutingStatsOptions so;
    so.n_layers = s.config.model.n_layers;
    so.n_experts = s.config.model.n_experts;
    s.stats_acc = std::make_unique<RoutingStatsAccumulator>(so);
  }
  if (s.main() && train.stats_every > 0 && !s.stats_writer) {
    // A resumed run starts a new file beside the first one instead of truncating it.
    auto path = s.io.out_dir / "routing_train.h5";
    if (s.step > 0 && std::filesystem::exists(path))
      path = s.io.out_dir / fmt::format("routing_train_from_step_{:08d}.h5", s.step);
    const RoutingStatsOptions& so = s.stats_acc->options();
    s.stats_writer = std::make_unique<RoutingTimeSeriesWriter>(
        path, so.n_layers, so.n_experts,
        RoutingTimeSeriesAttrs{{"router", s.config.router.type},
                               {"config", config_to_json(s.config).dump()},
                               {"git_rev", git_revision()},
                               {"stats_every", std::to_string(train.stats_every)}});
  }

  auto window_start = Clock::now();
  int64_t window_tokens = 0;
  double window_seconds = 0;
  bool stopping = false;
  std::string status = "finished";

  while (s.step < train.max_steps) {
    const auto step_t0 = Clock::now();
    const int64_t index = s.step;  // 0-based index of the step being run
    const bool stats_now = s.stats_acc != nullptr && is_every(index + 1, train.stats_every);
    if (stats_now) s.model->set_routing_sink(s.stats_acc.get());
    const double lr = learning_rate_at(index, train);
    TrainStepOptions step_options;
    step_options.batch_size = B;
    step_options.grad_accum = A;
    step_options.seq_len = T;
    step_options.lr = lr;
    step_options.grad_clip = train.grad_clip;
    step_options.bf16 = s.bf16;
    step_options.device = s.device;
    step_options.seed = train.seed;
    step_options.expert_parallel = s.ep.get();
    step_options.grad_norm_terms = is_every(index + 1, train.grad_norm_terms_every);
    const TrainStepResult r = train_step(index, *s.model, *s.optimizer, s.params, *s.source, *s.dist, step_options);
    TORCH_CHECK(r.active_experts_L.size(0) == s.n_layers, "model returned ", r.active_experts_L.size(0),
                " layer metrics, config.model.n_layers = ", s.n_layers);
    const torch::Tensor& lm_sum = r.lm_loss;
    const std::map<std::string, torch::Tensor>& aux_sum = r.aux_losses;
    const torch::Tensor& ek_L = r.active_experts_L;
    const torch::Tensor& dropped_L = r.dropped_L;
    const std::vector<torch::Tensor>& tpe_L = r.tokens_per_expert_L;
    const std::vector<std::map<std::string, torch::Tensor>>& router_L = r.router_metrics_L;
    const torch::Tensor& grad_norm = r.grad_norm;
    if (!s.clipped_steps_device.defined()) {
      s.clipped_steps_device = torch::full({}, s.clipped_steps, torch::TensorOptions().dtype(torch::kFloat64).device(s.device));
    }
    if (train.grad_clip > 0) s.clipped_steps_device += (grad_norm.to(s.device) > train.grad_clip).to(torch::kFloat64);

    ++s.step;
    if (stats_now) {
      s.model->set_routing_sink(nullptr);
      RoutingStatsSnapshot snapshot = s.stats_acc->snapshot();
      s.stats_acc->reset();
      if (s.dist->active()) {
        const std::vector<std::string> all =
            s.dist->gather_to_main(routing_stats_counts_to_json(snapshot).dump(), fmt::format("stats_{}", s.step));
        for (size_t r = 1; r < all.size(); ++r) {
          add_routing_stats(snapshot, routing_stats_counts_from_json(nlohmann::json::parse(all[r])));
        }
      }
      if (s.stats_writer) s.stats_writer->append(s.step, snapshot);
    }
    const int64_t step_tokens = B * A * W * T;
    s.tokens += step_tokens;
    window_tokens += step_tokens;
    if (index >= warmup) {
      s.parity.add(ek_L);
      s.load.add(tpe_L);
    }

    // Device-side divergence bookkeeping (no sync).
    {
      std::vector<torch::Tensor> values{lm_sum};
      std::vector<std::string> names{"lm_loss"};
      for (const auto& [name, value] : aux_sum) {
        values.push_back(value);
        names.push_back("aux/" + name);
      }
      values.push_back(grad_norm.to(s.device));
      names.push_back("grad_norm");
      const torch::Tensor bad_N = torch::logical_not(torch::isfinite(torch::stack(values)));
      if (!s.nonfinite_N.defined() || names != s.term_names) {
        s.term_names = names;
        s.nonfinite_N = torch::zeros({static_cast<int64_t>(names.size())}, torch::TensorOptions().dtype(torch::kBool).device(s.device));
        s.first_bad_step_N = torch::full({static_cast<int64_t>(names.size())}, -1, torch::TensorOptions().dtype(torch::kInt64).device(s.device));
      }
      s.first_bad_step_N = torch::where(bad_N & torch::logical_not(s.nonfinite_N), torch::full_like(s.first_bad_step_N, s.step),
                                        s.first_bad_step_N);
      s.nonfinite_N = s.nonfinite_N | bad_N;
    }

    const bool last = s.step >= train.max_steps;
    if (!s.dist->active() && s.io.stop_requested != nullptr && s.io.stop_requested->load()) stopping = true;
    const bool eval_now = !s.val_batches.empty() && (is_every(s.step, train.eval_every) || last);
    const bool ckpt_now = is_every(s.step, train.ckpt_every) || last;
    const bool log_now = is_every(s.step, train.log_every) || last || eval_now || ckpt_now || stopping ||
                         !r.grad_norm_terms.empty();
    window_seconds += seconds_since(step_t0);
    if (!log_now) continue;

    // ---- log step: the one place the host waits for the device ----------------------------
    if (s.dist->active()) {
      torch::Tensor flag = torch::full({1}, (s.io.stop_requested != nullptr && s.io.stop_requested->load()) ? 1.0f : 0.0f, fopts);
      s.dist->max_(flag);
      if (flag.item<float>() > 0) stopping = true;
    }
    check_finite();

    // Pack every logged scalar into one vector, average over ranks, copy to the host once.
    std::vector<torch::Tensor> packed{lm_sum.reshape({1})};
    std::vector<std::string> aux_names;
    for (const auto& [name, value] : aux_sum) {
      packed.push_back(value.reshape({1}));
      aux_names.push_back(name);
    }
    packed.push_back(grad_norm.to(s.device).to(torch::kFloat32).reshape({1}));
    packed.push_back(ek_L);
    packed.push_back(dropped_L);
    std::vector<torch::Tensor> cv_parts;
    for (int64_t l = 0; l < s.n_layers; ++l) {
      const torch::Tensor& tpe = tpe_L[static_cast<size_t>(l)];
      if (tpe.defined() && tpe.numel() > 0) {
        const torch::Tensor mean = tpe.mean();
        cv_parts.push_back((tpe.std(/*unbiased=*/false) / mean.clamp_min(1e-12)).reshape({1}));
      } else {
        cv_parts.push_back(torch::full({1}, std::numeric_limits<float>::quiet_NaN(), fopts));
      }
    }
    packed.push_back(torch::cat(cv_parts));
    std::vector<std::pair<int64_t, std::string>> router_keys;
    for (int64_t l = 0; l < s.n_layers; ++l) {
      for (const auto& [name, value] : router_L[static_cast<size_t>(l)]) {
        router_keys.emplace_back(l, name);
        packed.push_back(value.reshape({1}));
      }
    }
    std::vector<std::string> term_names;
    for (const auto& [name, norms_G] : r.grad_norm_terms) {
      term_names.push_back(name);
      packed.push_back(norms_G.to(torch::kFloat32).reshape({-1}));
    }
    packed.push_back(s.clipped_steps_device.to(torch::kFloat32).reshape({1}));
    torch::Tensor all = torch::cat(packed).to(torch::kFloat32);
    s.dist->average_(all);
    const torch::Tensor host = all.cpu().to(torch::kFloat64).contiguous();
    const double* h = host.data_ptr<double>();
    size_t at = 0;
    const double lm_loss = h[at++];
    nlohmann::json aux_json = nlohmann::json::object();
    double loss = lm_loss;
    for (const auto& name : aux_names) {
      aux_json[name] = h[at];
      loss += h[at++];
    }
    const double gnorm = h[at++];
    std::vector<double> ek(static_cast<size_t>(s.n_layers)), dropped(ek.size()), cv(ek.size());
    for (auto& v : ek) v = h[at++];
    for (auto& v : dropped) v = h[at++];
    for (auto& v : cv) v = h[at++];
    nlohmann::json layers = nlohmann::json::array();
    std::map<std::string, std::pair<double, int64_t>> router_mean;
    std::vector<nlohmann::json> layer_router(ek.size(), nlohmann::json::object());
    for (const auto& [l, name] : router_keys) {
      const double v = h[at++];
      layer_router[static_cast<size_t>(l)][name] = finite_or_null(v);
      auto& acc = router_mean[name];
      acc.first += v;
      acc.second += 1;
    }
    double ek_mean = 0;
    for (size_t l = 0; l < ek.size(); ++l) {
      ek_mean += ek[l] / static_cast<double>(ek.size());
      layers.push_back({{"active_experts", finite_or_null(ek[l])},
                        {"load_cv", finite_or_null(cv[l])},
                        {"dropped_tokens", finite_or_null(dropped[l])},
                        {"router", layer_router[l]}});
    }
    nlohmann::json router_json = nlohmann::json::object();
    for (const auto& [name, acc] : router_mean) router_json[name] = finite_or_null(acc.first / static_cast<double>(acc.second));
    nlohmann::json terms_json = nlohmann::json::object();
    for (const auto& name : term_names) {
      nlohmann::json groups = nlohmann::json::object();
      for (const char* group : kGradNormGroups) groups[group] = finite_or_null(h[at++]);
      terms_json[name] = groups;
    }
    s.clipped_steps = std::round(h[at++]);

    const double tokens_per_s = window_seconds > 0 ? static_cast<double>(window_tokens) / window_seconds : 0.0;
    s.train_seconds += window_seconds;
    const std::optional<double> fpt = s.model->flops_per_token(ek);
    if (fpt) s.total_flops += *fpt * static_cast<double>(window_tokens);
    else s.flops_known = false;
    window_tokens = 0;
    window_seconds = 0;

    double val_loss = std::numeric_limits<double>::quiet_NaN();
    bool improved = false;
    // Every process scores its share of the validation rows (validation_loss adds them up), so all
    // agree on the loss and on best.ckpt.
    if (eval_now) {
      val_loss = validation_loss();
      s.last_val = val_loss;
      if (std::isfinite(val_loss) && val_loss < s.best_val) {
        s.best_val = val_loss;
        s.best_step = s.step;
        improved = true;
      }
    }

    if (s.main()) {
      nlohmann::json line = {
          {"step", s.step},
          {"tokens", s.tokens},
          {"loss", finite_or_null(loss)},
          {"lm_loss", finite_or_null(lm_loss)},
          {"aux_losses", aux_json},
          {"lr", lr},
          {"grad_norm", finite_or_null(gnorm)},
          {"tokens_per_s", tokens_per_s},
          {"active_experts_target", s.config.model.n_experts_active},
          {"active_experts_mean", finite_or_null(ek_mean)},
          {"layers", layers},
          {"router_metrics", router_json},
          // NOTE: null until the model provides a FLOPs calculator (TrainableModel::flops_per_token).
          {"flops_per_token", fpt ? nlohmann::json(*fpt) : nlohmann::json(nullptr)},
      };
      if (!term_names.empty()) line["grad_norm_terms"] = terms_json;
      if (eval_now) {
        line["val_loss"] = finite_or_null(val_loss);
        line["val_ppl"] = finite_or_null(std::exp(val_loss));
      }
      metrics << line.dump() << "\n" << std::flush;
      const double eta = tokens_per_s > 0 ? static_cast<double>((train.max_steps - s.step) * step_tokens) / tokens_per_s
                                          : std::numeric_limits<double>::quiet_NaN();
      s.progress->update(s.step, train.max_steps, loss, tokens_per_s, eta,
                         eval_now ? fmt::format("val {:.4f}", val_loss) : fmt::format("E[k] {:.3f}", ek_mean));
    }

    if (ckpt_now || stopping) {
      // The routing time series first: a run resumed from this checkpoint finds every row up to it.
      if (s.stats_writer) s.stats_writer->flush();
      const auto path = s.ckpt_dir / step_checkpoint_name(s.step);
      write_checkpoint(path, /*all_ranks=*/true);
      if (s.main()) {
        s.last_ckpt = path;
        prune_step_checkpoints(s.ckpt_dir, train.keep_last);
        if (improved) {
          // Same state as the step checkpoint: hard-link it under a temporary name, then rename.
          const auto tmp = s.ckpt_dir / "best.ckpt.tmp";
          std::error_code ec;
          std::filesystem::remove(tmp, ec);
          std::filesystem::create_hard_link(path, tmp, ec);
          if (ec) std::filesystem::copy_file(path, tmp, std::filesystem::copy_options::overwrite_existing);
          std::filesystem::rename(tmp, s.ckpt_dir / "best.ckpt");
        }
      }
    } else if (improved) {
      write_checkpoint(s.ckpt_dir / "best.ckpt", /*all_ranks=*/false);
    }
    window_start = Clock::now();
    if (stopping && !last) {
      status = "stopped";
      s.say(fmt::format("stop requested: checkpoint written at step {}", s.step));
      break;
    }
  }
  (void)window_start;
  s.progress->finish();
  if (s.stats_writer) s.stats_writer->close();

  // ---- summary -----------------------------------------------------------------------------
  TrainResult result;
  result.steps_done = s.step;
  result.status = status;
  if (s.main()) {
    const std::vector<double> ek_mean = s.parity.mean_active_experts();
    const std::optional<double> fpt =
        s.parity.steps() > 0 ? s.model->flops_per_token(ek_mean) : std::optional<double>();
    nlohmann::json parity = parity_report(ek_mean, static_cast<double>(s.config.model.n_experts_active),
                                          train.parity_tolerance, s.parity.steps(), fpt,
                                          s.flops_known ? std::optional<double>(s.total_flops) : std::nullopt);
    parity["warmup_steps"] = warmup;
    nlohmann::json summary = {
        {"status", status},
        {"router", s.config.router.type},
        {"steps", s.step},
        {"max_steps", train.max_steps},
        {"tokens", s.tokens},
        {"world_size", W},
        {"expert_parallel", s.ep ? s.ep->size() : 1},
        {"device", s.device.str()},
        {"precision", s.bf16 ? "bf16-autocast" : "fp32"},
        {"tokens_per_s", s.train_seconds > 0 ? static_cast<double>(s.tokens) / s.train_seconds : 0.0},
        {"final_val_loss", finite_or_null(s.last_val)},
        {"final_val_ppl", finite_or_null(std::exp(s.last_val))},
        {"best_val_loss", finite_or_null(s.best_val)},
        {"best_step", s.best_step},
        {"clipped_steps",
         {{"count", static_cast<int64_t>(s.clipped_steps)},
          {"fraction", s.step > 0 ? s.clipped_steps / static_cast<double>(s.step) : 0.0},
          {"grad_clip", train.grad_clip}}},
        {"parity", parity},
        {"load", s.load.report()},
        {"git_revision", git_revision()},
    };
    if (const auto counts = s.model->parameter_counts()) {
      summary["parameters"] = {{"total", counts->total()},
                               {"embedding", counts->embedding},
                               {"attention", counts->attention},
                               {"experts", counts->experts},
                               {"router", counts->router},
                               {"norms", counts->norms},
                               {"head", counts->head}};
    }
    write_file_atomic(s.io.out_dir / "summary.json", summary.dump(2) + "\n");
    result.summary = summary;
    if (parity["ok"].is_boolean() && !parity["ok"].get<bool>()) {
      s.say(fmt::format("warning: compute parity: layers {} stray more than {:.0f}% from k = {} (see summary.json)",
                        parity["flagged_layers"].dump(), 100 * train.parity_tolerance, s.config.model.n_experts_active));
    }
    const nlohmann::json& load = summary["load"];
    if (load["ok"].is_boolean() && !load["ok"].get<bool>()) {
      s.say(fmt::format("warning: expert load: layers {} send more than {} times the mean load to one expert after "
                        "warm-up (see summary.json)",
                        load["flagged_layers"].dump(), kDefaultLoadThreshold));
    }
  }
  return result;
}

}  // namespace dirmoe
