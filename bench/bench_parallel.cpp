// `make bench`'s expert-parallel figure: the train step of W processes (torchrun, Gloo on CPU) with
// the experts sharded over them (model.expert_parallel = W) against plain data parallel, the two
// configurations interleaved in the same processes (A B B A ...). Both run dirmoe::train_step as
// dirmoe-train does; the expert-parallel model's all-to-alls are timed through a wrapper of its
// exchange, which counts waiting for the peers as well.
//
//   torchrun --standalone --nproc-per-node 2 --no-python build/bin/bench_parallel --scale d512 --threads 1
//
// Rank 0 prints one JSON object on stdout (bench/run_bench.py reads it).
#include <algorithm>
#include <chrono>
#include <iostream>
#include <memory>
#include <random>
#include <string>
#include <vector>

#include <CLI/CLI.hpp>
#include <nlohmann/json.hpp>
#include <torch/torch.h>

#include "dirmoe/core/build_info.h"
#include "dirmoe/core/cpu_caching_allocator.h"
#include "dirmoe/model/decoder.h"
#include "dirmoe/train/expert_parallel.h"
#include "dirmoe/train/optimizer.h"
#include "dirmoe/train/train_step.h"
#include "dirmoe/train/trainable_model.h"

#include "random_batches.h"

using namespace dirmoe;
using json = nlohmann::json;
using Clock = std::chrono::steady_clock;

namespace {

double seconds_since(Clock::time_point t0) { return std::chrono::duration<double>(Clock::now() - t0).count(); }

double median(std::vector<double> v) {
  std::sort(v.begin(), v.end());
  const size_t n = v.size();
  return n == 0 ? 0.0 : n % 2 ? v[n / 2] : 0.5 * (v[n / 2 - 1] + v[n / 2]);
}

/// The exchange of the expert-parallel group, with the wall time spent in its all-to-alls.
class TimedExchange : public ExpertExchange {
 public:
  explicit TimedExchange(std::shared_ptr<ExpertExchange> inner) : inner_(std::move(inner)) {}
  int64_t rank() const override { return inner_->rank(); }
  int64_t size() const override { return inner_->size(); }
  torch::Tensor all_to_all(const torch::Tensor& input, const std::vector<int64_t>& output_splits,
                           const std::vector<int64_t>& input_splits) override {
    const auto t0 = Clock::now();
    torch::Tensor out = inner_->all_to_all(input, output_splits, input_splits);
    seconds += seconds_since(t0);
    rows_sent += input.size(0);
    ++calls;
    return out;
  }
  double seconds = 0;
  int64_t rows_sent = 0;
  int64_t calls = 0;

 private:
  std::shared_ptr<ExpertExchange> inner_;
};

using bench::RandomBatches;

Config scale_config(const std::string& scale) {
  Config c;
  ModelConfig& m = c.model;
  m.vocab_size = 8192;
  m.n_experts = 8;
  m.n_experts_active = 1;
  m.init_std = 0.02;
  c.train.batch_size = 8;
  if (scale == "d512") {
    m.d_model = 512, m.n_layers = 4, m.n_heads = 8, m.n_kv_heads = 4, m.d_ff = 2048, m.seq_len = 256;
  } else if (scale == "tiny") {
    m.d_model = 128, m.n_layers = 2, m.n_heads = 4, m.n_kv_heads = 2, m.d_ff = 256, m.seq_len = 128;
  } else {
    throw std::runtime_error("unknown scale " + scale + " (d512, tiny)");
  }
  c.train.device = "cpu";
  return c;
}

struct Runner {
  std::string name;
  std::shared_ptr<TrainableModel> model;
  std::unique_ptr<ExpertParallel> ep;
  std::shared_ptr<TimedExchange> timed;
  std::unique_ptr<torch::optim::AdamW> optimizer;
  std::vector<torch::Tensor> params;
  std::unique_ptr<RandomBatches> source;
  TrainStepOptions options;
  int64_t step = 0;
  std::vector<double> seconds, a2a_seconds;

  Runner(std::string name_, const Config& c, DistributedContext& world, bool expert_parallel) : name(std::move(name_)) {
    torch::manual_seed(c.train.seed);
    model = make_trainable(Decoder(c));
    model->module().train();
    if (expert_parallel) {
      ep = std::make_unique<ExpertParallel>(world, world.world_size(), c.model.n_experts);
      timed = std::make_shared<TimedExchange>(ep->exchange());
      ep->shard(*model, timed);
      ep->broadcast(model->module());
    } else {
      world.broadcast_module(model->module());
    }
    model->set_batch_mean_reducer(make_batch_mean_reducer(world));
    optimizer = make_optimizer(model->module(), c.train);
    for (auto& p : model->module().parameters()) params.push_back(p);
    source = std::make_unique<RandomBatches>(c.model.vocab_size, c.model.seq_len, c.train.seed);
    options.batch_size = c.train.batch_size;
    options.seq_len = c.model.seq_len;
    options.lr = c.train.lr;
    options.grad_clip = c.train.grad_clip;
    options.seed = c.train.seed;
    options.expert_parallel = ep.get();
  }

  void run(DistributedContext& world, bool timed_step) {
    world.barrier();  // start together: the step time is the slowest process's
    const double a2a_before = timed ? timed->seconds : 0.0;
    const auto t0 = Clock::now();
    train_step(step++, *model, *optimizer, params, *source, world, options);
    world.barrier();
    if (timed_step) {
      seconds.push_back(seconds_since(t0));
      a2a_seconds.push_back(timed ? timed->seconds - a2a_before : 0.0);
    }
  }
};

}  // namespace

int main(int argc, char** argv) {
  CLI::App app{"expert parallel vs data parallel train step (run under torchrun; rank 0 prints JSON)"};
  std::string scale = "d512";
  int64_t threads = 1, batch = 0;
  int repeats = 4, warmup = 1;
  app.add_option("--scale", scale, "d512 | tiny");
  app.add_option("--threads", threads, "intra-op threads per process");
  app.add_option("--batch", batch, "sequences per process and step (0: the scale's)");
  app.add_option("--repeats", repeats, "timed steps per configuration");
  app.add_option("--warmup", warmup, "untimed steps per configuration first");
  CLI11_PARSE(app, argc, argv);
  try {
    install_cpu_caching_allocator();
    torch::set_num_threads(static_cast<int>(threads));
    auto world = DistributedContext::from_environment(torch::kCPU);
    if (world->world_size() < 2) throw std::runtime_error("start it with torchrun --nproc-per-node 2 (or more)");
    Config c = scale_config(scale);
    if (batch > 0) c.train.batch_size = batch;
    Runner dp("data_parallel", c, *world, /*expert_parallel=*/false);
    Runner ep("expert_parallel", c, *world, /*expert_parallel=*/true);
    for (int i = 0; i < warmup; ++i) {
      dp.run(*world, false);
      ep.run(*world, false);
    }
    for (int i = 0; i < repeats; ++i) {
      // A B B A: neither always runs first
      if (i % 2 == 0) {
        dp.run(*world, true);
        ep.run(*world, true);
      } else {
        ep.run(*world, true);
        dp.run(*world, true);
      }
    }
    if (world->is_main()) {
      const int64_t W = world->world_size();
      const int64_t tokens = c.train.batch_size * c.model.seq_len * W;
      auto describe = [&](const Runner& r) {
        return json{{"step_seconds", median(r.seconds)},
                    {"step_seconds_all", r.seconds},
                    {"tokens_per_s", static_cast<double>(tokens) / median(r.seconds)},
                    {"all_to_all_seconds", median(r.a2a_seconds)}};
      };
      json out = {{"git_revision", git_revision()},
                  {"scale", scale},
                  {"processes", W},
                  {"threads_per_process", threads},
                  {"backend", world->backend_name()},
                  {"model", {{"d_model", c.model.d_model}, {"n_layers", c.model.n_layers}, {"d_ff", c.model.d_ff},
                             {"seq_len", c.model.seq_len}, {"n_experts", c.model.n_experts},
                             {"k", c.model.n_experts_active}}},
                  {"batch_per_process", c.train.batch_size},
                  {"tokens_per_step", tokens},
                  {"data_parallel", describe(dp)},
                  {"expert_parallel", describe(ep)},
                  {"ep_over_dp", median(ep.seconds) / median(dp.seconds)},
                  {"all_to_all_rows_per_step", ep.timed->rows_sent / std::max<int64_t>(1, ep.step)},
                  {"all_to_all_calls_per_step", ep.timed->calls / std::max<int64_t>(1, ep.step)}};
      std::cout << out.dump() << std::endl;
    }
    world->barrier();
    return 0;
  } catch (const std::exception& e) {
    std::cerr << "bench_parallel: error: " << e.what() << "\n";
    return 1;
  }
}
