#include "dirmoe/train/trainer.h"

#include <algorithm>
#include <chrono>
#include <fstream>
#include <iostream>
#include <limits>
#include <thread>
#include <fmt/format.h>
#include <torch/torch.h>

#include "dirmoe/core/atomic_file.h"
#include "dirmoe/core/device.h"
#include "dirmoe/core/progress.h"
#include "dirmoe/stats/routing_report.h"
#include "dirmoe/train/checkpoint_writer.h"
#include "dirmoe/train/expert_parallel.h"
#include "dirmoe/train/lr_schedule.h"
#include "dirmoe/train/nonfinite_guard.h"
#include "dirmoe/train/optimizer.h"
#include "dirmoe/train/routing_series_recorder.h"
#include "dirmoe/train/run_counters.h"
#include "dirmoe/train/run_resume.h"
#include "dirmoe/train/run_summary.h"
#include "dirmoe/train/step_log.h"
#include "dirmoe/train/train_step.h"
#include "dirmoe/train/validation_loss.h"

namespace dirmoe {
namespace {

using Clock = std::chrono::steady_clock;
double seconds_since(Clock::time_point t0) { return std::chrono::duration<double>(Clock::now() - t0).count(); }
bool is_every(int64_t step, int64_t every) { return every > 0 && step % every == 0; }

/// Intra-op threads: train.threads, else the cores shared evenly by the processes on this node.
int64_t training_threads(const TrainConfig& train) {
  if (train.threads > 0) return train.threads;
  const char* local_world = std::getenv("LOCAL_WORLD_SIZE");
  const int64_t procs = std::max<int64_t>(1, local_world ? std::atoll(local_world) : 1);
  return std::max<int64_t>(1, static_cast<int64_t>(std::thread::hardware_concurrency()) / procs);
}

/// Tokens and training seconds since the last log step (its tokens/s and FLOPs).
struct LogWindow {
  int64_t tokens = 0;
  double seconds = 0;
};
/// What a completed step must be followed by.
struct StepDue {
  bool last = false, eval = false, checkpoint = false, log = false, stopping = false;
};
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
  RunCounters counters;
  torch::Tensor clipped_steps_device;  // () float64: steps whose gradient norm exceeded train.grad_clip
  std::unique_ptr<NonFiniteGuard> guard;
  std::unique_ptr<CheckpointWriter> checkpoints;
  std::unique_ptr<StatusLine> status;

  int64_t step_tokens() const {
    return config.train.batch_size * config.train.grad_accum * dist->world_size() * config.model.seq_len;
  }
  void say(const std::string& text) {
    if (dist->is_main()) status->message(text);
  }
  CheckpointSources checkpoint_sources() { return {config, model->module(), optimizer.get(), *source, counters}; }

  /// One optimiser step and its device-side bookkeeping (counters, parity, load, clipped steps, the guard).
  TrainStepResult run_step(int64_t index);
  /// Log, validation and checkpoint due after the step just completed; a stop request (a signal) too.
  StepDue due_after_step(const TrainStepResult& r) const;
  /// The log step: figures over ranks, metrics.jsonl line, progress line; returns the validation loss.
  std::optional<double> log_step(const TrainStepResult& r, const StepDue& due, LogWindow& window, std::ostream& metrics);
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
  s.status = std::make_unique<StatusLine>(s.io.log != nullptr ? s.io.log : &std::cerr, s.io.log_is_tty);
  if (s.io.dist == nullptr) s.own_dist = std::make_unique<DistributedContext>();
  s.dist = s.io.dist != nullptr ? s.io.dist : s.own_dist.get();
  const TrainConfig& train = s.config.train;
  TORCH_CHECK(s.model && s.source, "Trainer needs a model and a batch source");
  at::set_num_threads(static_cast<int>(training_threads(train)));
  s.device = resolve_train_device(train, s.dist->local_rank());
  s.bf16 = use_bf16_autocast(train, s.device);
  const int64_t n_layers = s.config.model.n_layers;
  s.counters.parity = ParityTracker(n_layers, static_cast<double>(s.config.model.n_experts_active), train.parity_tolerance);
  s.counters.load = LoadTracker(n_layers, s.config.model.n_experts, kDefaultLoadThreshold);
  s.guard = std::make_unique<NonFiniteGuard>(s.device);

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
  for (auto& p : module.parameters()) if (p.requires_grad()) s.params.push_back(p);
  // NOTE: the model was initialised from train.seed (identically on every rank, and broadcast
  // anyway); from here each rank draws its own router noise from seed + rank offset.
  torch::manual_seed(train.seed + 1000003ULL * static_cast<uint64_t>(s.dist->rank()));

  s.checkpoints = std::make_unique<CheckpointWriter>(s.io.out_dir / "checkpoints", train.keep_last, *s.dist, s.ep.get());
  if (s.io.resume) {
    s.checkpoints->set_last(resume_from_newest_checkpoint(
        s.checkpoints->dir(), ResumeTargets{s.config, module, *s.optimizer, *s.source, s.counters, *s.dist, s.ep.get()},
        [&s](const std::string& text) { s.say(text); }));
    // Drop metric lines the interrupted run wrote after its last checkpoint.
    if (s.dist->is_main()) drop_metrics_after(s.io.out_dir / "metrics.jsonl", s.counters.step);
  }
}

Trainer::~Trainer() = default;
int64_t Trainer::step() const { return s_->counters.step; }

double Trainer::validation_loss() {
  return dirmoe::validation_loss(*s_->model, s_->val_batches, *s_->dist, s_->device, s_->bf16, s_->config.model.seq_len);
}

TrainStepResult Trainer::State::run_step(int64_t index) {
  const TrainConfig& train = config.train;
  dist->report_progress(index + 1, "train step");
  TrainStepOptions o;
  o.batch_size = train.batch_size;
  o.grad_accum = train.grad_accum;
  o.seq_len = config.model.seq_len;
  o.lr = learning_rate_at(index, train);
  o.grad_clip = train.grad_clip;
  o.bf16 = bf16;
  o.device = device;
  o.seed = train.seed;
  o.expert_parallel = ep.get();
  o.grad_norm_terms = is_every(index + 1, train.grad_norm_terms_every);
  TrainStepResult r = train_step(index, *model, *optimizer, params, *source, *dist, o);
  TORCH_CHECK(r.active_experts_L.size(0) == config.model.n_layers, "model returned ", r.active_experts_L.size(0),
              " layer metrics, config.model.n_layers = ", config.model.n_layers);
  ++counters.step;
  counters.tokens += step_tokens();
  if (index >= warmup_steps(train)) {
    counters.parity.add(r.active_experts_L);
    counters.load.add(r.tokens_per_expert_L);
  }
  if (!clipped_steps_device.defined()) {
    clipped_steps_device = torch::full({}, counters.clipped_steps, torch::TensorOptions().dtype(torch::kFloat64).device(device));
  }
  if (train.grad_clip > 0) clipped_steps_device += (r.grad_norm.to(device) > train.grad_clip).to(torch::kFloat64);
  // Device-side divergence bookkeeping (no sync).
  std::vector<torch::Tensor> values{r.lm_loss};
  std::vector<std::string> names{"lm_loss"};
  for (const auto& [name, value] : r.aux_losses) {
    values.push_back(value);
    names.push_back("aux/" + name);
  }
  values.push_back(r.grad_norm);
  names.emplace_back("grad_norm");
  guard->record(counters.step, names, values);
  return r;
}

StepDue Trainer::State::due_after_step(const TrainStepResult& r) const {
  const TrainConfig& train = config.train;
  StepDue d;
  d.last = counters.step >= train.max_steps;
  d.stopping = !dist->active() && io.stop_requested != nullptr && io.stop_requested->load();
  d.eval = !val_batches.empty() && (is_every(counters.step, train.eval_every) || d.last);
  d.checkpoint = is_every(counters.step, train.ckpt_every) || d.last;
  d.log = is_every(counters.step, train.log_every) || d.last || d.eval || d.checkpoint || d.stopping ||
          !r.grad_norm_terms.empty();
  return d;
}

std::optional<double> Trainer::State::log_step(const TrainStepResult& r, const StepDue& due, LogWindow& window,
                                               std::ostream& metrics) {
  dist->report_progress(counters.step, "log step");
  const StepLogFigures figures = gather_step_figures(r, clipped_steps_device, *dist, config.model.n_layers);
  counters.clipped_steps = figures.clipped_steps;
  StepLogContext context;
  context.step = counters.step;
  context.tokens = counters.tokens;
  context.lr = learning_rate_at(counters.step - 1, config.train);
  context.tokens_per_s = window.seconds > 0 ? static_cast<double>(window.tokens) / window.seconds : 0.0;
  context.active_experts_target = config.model.n_experts_active;
  context.flops_per_token = model->flops_per_token(figures.active_experts_L);
  counters.train_seconds += window.seconds;
  if (context.flops_per_token) counters.total_flops += *context.flops_per_token * static_cast<double>(window.tokens);
  else counters.flops_known = false;
  window = LogWindow{};
  // Every process scores its share of the validation rows, so all agree on the loss and on best.ckpt.
  if (due.eval) dist->report_progress(counters.step, "validation");
  if (due.eval) context.val_loss = dirmoe::validation_loss(*model, val_batches, *dist, device, bf16, config.model.seq_len);
  if (dist->is_main()) {
    metrics << metrics_line(figures, context).dump() << "\n" << std::flush;
    const double eta = context.tokens_per_s > 0 ? static_cast<double>((config.train.max_steps - counters.step) * step_tokens()) /
                                                      context.tokens_per_s
                                                : std::numeric_limits<double>::quiet_NaN();
    status->show(progress_text(figures, context, config.train.max_steps, eta));
  }
  return context.val_loss;
}

TrainResult Trainer::run() {
  State& s = *s_;
  const TrainConfig& train = s.config.train;
  const auto metrics_path = s.io.out_dir / "metrics.jsonl";
  std::ofstream metrics;
  if (s.dist->is_main()) {
    metrics.open(metrics_path, std::ios::app);
    if (!metrics) throw IoError(fmt::format("{}: cannot open for writing", metrics_path.string()));
  }
  RoutingSeriesRecorder series(s.config, s.io.out_dir, s.counters.step, *s.dist);
  LogWindow window;
  std::string status = "finished";
  while (s.counters.step < train.max_steps) {
    const auto step_t0 = Clock::now();
    series.before_step(s.counters.step, *s.model);
    const TrainStepResult r = s.run_step(s.counters.step);
    series.after_step(s.counters.step, *s.model);
    StepDue due = s.due_after_step(r);
    window.tokens += s.step_tokens();
    window.seconds += seconds_since(step_t0);
    if (!due.log) continue;

    // ---- log step: the one place the host waits for the device ----------------------------
    if (s.dist->active()) {
      torch::Tensor flag = torch::full({1}, (s.io.stop_requested != nullptr && s.io.stop_requested->load()) ? 1.0f : 0.0f,
                                       torch::TensorOptions().dtype(torch::kFloat32).device(s.device));
      s.dist->max_(flag);
      if (flag.item<float>() > 0) due.stopping = true;
    }
    s.guard->check(*s.dist, s.counters.step, s.checkpoints->last(), s.io.out_dir / "summary.json");
    const std::optional<double> val_loss = s.log_step(r, due, window, metrics);
    const bool improved = val_loss && s.counters.record_validation(*val_loss);
    if (due.checkpoint || due.stopping) {
      series.flush();  // first: a run resumed from this checkpoint finds every row up to it
      s.checkpoints->write_step(s.checkpoint_sources(), improved);
    } else if (improved) {
      s.checkpoints->write_best(s.checkpoint_sources());
    }
    if (due.stopping && !due.last) {
      status = "stopped";
      s.say(fmt::format("stop requested: checkpoint written at step {}", s.counters.step));
      break;
    }
  }
  s.status->finish();
  series.close();

  TrainResult result{s.counters.step, status, {}};
  if (s.dist->is_main()) {
    const RunSetup setup{status, s.dist->world_size(), s.ep ? s.ep->size() : 1, s.device.str(), s.bf16, warmup_steps(train)};
    result.summary = run_summary(s.config, s.counters, *s.model, setup);
    write_file_atomic(s.io.out_dir / "summary.json", result.summary.dump(2) + "\n");
    for (const std::string& warning : run_summary_warnings(result.summary, s.config)) s.say(warning);
  }
  return result;
}

}  // namespace dirmoe
