// `make bench`'s C++ measurements, printed as one JSON object (bench/run_bench.py assembles the
// figures, goals and tables). Everything runs through the library: the Decoder with the routers
// of the registry, make_trainable, make_optimizer and dirmoe::train_step (the step dirmoe-train
// runs), the MoeLayer, and the FLOPs calculator.
//
//   bench_suite suite --scale d512 [--repeats 4]   peak GEMM, router pairs, MoE vs dense, MFU, per-layer
//   bench_suite step  --scale d512 --router topk   one configuration alone: step time and peak memory
//   bench_suite step  --device cuda --config experiments/configs/llama185m_switch.json   a recipe's model
//
// Ratios are taken between configurations measured in the same process, their steps interleaved
// (A B A B ...), so that a change in machine load hits both alike; each figure is the median.
#include <sys/resource.h>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <fstream>
#include <iostream>
#include <memory>
#include <random>
#include <string>
#include <thread>
#include <functional>
#include <vector>

#include <CLI/CLI.hpp>
#include <fmt/format.h>
#include <nlohmann/json.hpp>
#include <ATen/record_function.h>
#include <torch/torch.h>
#include <torch/csrc/autograd/profiler_legacy.h>

#if __has_include(<c10/cuda/CUDACachingAllocator.h>)
#include <c10/cuda/CUDACachingAllocator.h>
#define DIRMOE_BENCH_CUDA_STATS 1
#endif

#include "dirmoe/core/build_info.h"
#include "dirmoe/core/cpu_caching_allocator.h"
#include "dirmoe/model/decoder.h"
#include "dirmoe/model/flops.h"
#include "dirmoe/model/moe_layer.h"
#include "dirmoe/model/swiglu_experts.h"
#include "dirmoe/router/element_kernels.h"
#include "dirmoe/router/router_registry.h"
#include "dirmoe/train/optimizer.h"
#include "dirmoe/train/train_step.h"
#include "dirmoe/train/trainable_model.h"

#include "random_batches.h"

using namespace dirmoe;
using json = nlohmann::json;

namespace {

using Clock = std::chrono::steady_clock;

double median(std::vector<double> v) {
  std::sort(v.begin(), v.end());
  const size_t n = v.size();
  return n % 2 ? v[n / 2] : 0.5 * (v[n / 2 - 1] + v[n / 2]);
}

/// The median of the per-round ratios a[r] / b[r] (the two passes of round r ran seconds apart, so a
/// slow stretch of the machine slows both) and a distribution-free interval around it: the j-th
/// smallest and j-th largest ratio for the largest j with P(Bin(n, ½) < j) ≤ 2.5%, which holds the
/// ratios' population median with probability ≥ 95% (the sign test's interval; n = 40 gives the 14th
/// and 27th). Below n = 6 no j qualifies: the interval is then [min, max], and `coverage` says how
/// likely it holds the median (1 − 2⁻ⁿ⁺¹). It covers the noise within one run, not drift between runs.
struct PairedRatio {
  double median = 0.0, lo = 0.0, hi = 0.0, coverage = 0.0;
};

PairedRatio paired_ratio(const std::vector<double>& a, const std::vector<double>& b) {
  const size_t n = std::min(a.size(), b.size());
  std::vector<double> ratios;
  for (size_t r = 0; r < n; ++r) ratios.push_back(a[r] / b[r]);
  std::sort(ratios.begin(), ratios.end());
  PairedRatio out;
  if (n == 0) return out;
  out.median = median(ratios);
  // the largest j with P(B ≤ j − 1) ≤ 2.5%, B ~ Bin(n, ½); j = 1 where none qualifies (n ≤ 5).
  // NOTE: the probabilities go through their logarithms: 2⁻ⁿ underflows to 0 from n = 1075 on.
  size_t j = 1;
  double log_pmf = -static_cast<double>(n) * std::log(2.0);  // log P(B = j − 1)
  double cdf = std::exp(log_pmf);                            // P(B ≤ j − 1)
  while (j + 1 <= (n + 1) / 2) {
    const double next_log_pmf = log_pmf + std::log(static_cast<double>(n - j + 1) / static_cast<double>(j));  // P(B = j)
    const double next_cdf = cdf + std::exp(next_log_pmf);
    if (next_cdf > 0.025) break;
    log_pmf = next_log_pmf;
    cdf = next_cdf;
    ++j;
  }
  out.lo = ratios[j - 1];
  out.hi = ratios[n - j];
  out.coverage = 1.0 - 2.0 * cdf;
  return out;
}

json paired_ratio_json(const PairedRatio& p) {
  return {{"median", p.median}, {"lo", p.lo}, {"hi", p.hi}, {"coverage", p.coverage}};
}

void sync(const torch::Device& device) {
  if (device.is_cuda()) torch::cuda::synchronize(device.index());
}

/// Peak resident set (VmHWM) of this process in bytes.
int64_t peak_rss_bytes() {
  std::ifstream status("/proc/self/status");
  std::string line;
  while (std::getline(status, line)) {
    if (line.rfind("VmHWM:", 0) == 0) return std::stoll(line.substr(6)) * 1024;
  }
  struct rusage usage {};
  getrusage(RUSAGE_SELF, &usage);
  return static_cast<int64_t>(usage.ru_maxrss) * 1024;
}

/// Named model sizes. "d512" is the scale the goals are stated at; "tiny" is tiny_switch.json's model.
Config scale_config(const std::string& scale, const std::string& device) {
  Config c;
  ModelConfig& m = c.model;
  m.vocab_size = 8192;  // the default corpus's tokenizer
  m.n_experts = 8;
  m.n_experts_active = 1;
  m.init_std = 0.02;
  c.train.batch_size = 8;
  if (scale == "d512") {
    m.d_model = 512, m.n_layers = 4, m.n_heads = 8, m.n_kv_heads = 4, m.d_ff = 2048, m.seq_len = 256;
  } else if (scale == "tiny") {
    m.d_model = 128, m.n_layers = 2, m.n_heads = 4, m.n_kv_heads = 2, m.d_ff = 256, m.seq_len = 128;
  } else if (scale == "llama185m") {
    m.d_model = 768, m.n_layers = 12, m.n_heads = 12, m.n_kv_heads = 4, m.d_ff = 3072, m.seq_len = 1024;
    m.vocab_size = 51200;
    m.init_std = 0.01;
    c.train.batch_size = 16;
  } else {
    throw std::runtime_error("unknown scale " + scale + " (d512, tiny, llama185m)");
  }
  c.train.device = device;
  c.train.precision = "auto";
  return c;
}

/// Suffix of a configuration name that swaps make_optimizer()'s AdamW for LibTorch's own
/// torch::optim::AdamW (same groups and options): the optimiser's share of the step.
const std::string kLibtorchAdamw = "+libtorch_adamw";

/// Whether `name` is a configuration name followed by `suffix` (not the suffix alone).
bool has_suffix(const std::string& name, const std::string& suffix) {
  return name.size() > suffix.size() && name.compare(name.size() - suffix.size(), suffix.size(), suffix) == 0;
}

bool uses_libtorch_adamw(const std::string& name) { return has_suffix(name, kLibtorchAdamw); }

/// Suffixes of "dirmoe" that set router.dirmoe.alpha_mlp_precision (docs/dirmoe.md, H14): DirMoE with
/// its α MLP's hidden layer in bf16, or in float32, whatever the step's autocast.
const std::string kAlphaBf16 = "+alpha_bf16", kAlphaFp32 = "+alpha_fp32";

/// Removes `suffix` from the end of `name` where has_suffix; says whether it did.
bool strip_suffix(std::string& name, const std::string& suffix) {
  if (!has_suffix(name, suffix)) return false;
  name.resize(name.size() - suffix.size());
  return true;
}

/// Configuration `name`: a router type at E=8, k=1, or "dense" (one expert, the same active size),
/// optionally with the kLibtorchAdamw suffix; "dirmoe" also with kAlphaBf16 or kAlphaFp32.
Config variant(Config c, std::string name) {
  strip_suffix(name, kLibtorchAdamw);
  for (const std::string* suffix : {&kAlphaBf16, &kAlphaFp32}) {
    if (!strip_suffix(name, *suffix)) continue;
    if (name != "dirmoe") throw std::invalid_argument("configuration '" + name + *suffix + "': the suffix is DirMoE's");
    c.router.dirmoe.alpha_mlp_precision = suffix == &kAlphaBf16 ? "bf16" : "fp32";
  }
  if (name == "dense") {
    c.model.n_experts = 1;
    c.router.type = "topk";
  } else {
    c.router.type = name;
  }
  return c;
}

using bench::RandomBatches;

/// One model with its optimiser, stepped by dirmoe::train_step exactly as the trainer does.
struct StepRunner {
  std::string name;
  Config config;
  torch::Device device;
  std::shared_ptr<TrainableModel> model;
  std::unique_ptr<torch::optim::AdamW> optimizer;
  std::vector<torch::Tensor> params;
  std::unique_ptr<RandomBatches> source;
  DistributedContext dist;
  TrainStepOptions options;
  int64_t step = 0;
  std::vector<double> seconds;     // timed steps
  std::vector<double> ek_sum;      // Σ measured E[k] per layer over timed steps
  TrainStepResult last;

  StepRunner(std::string name_, const Config& c, const torch::Device& dev) : name(std::move(name_)), config(c), device(dev) {
    torch::manual_seed(config.train.seed);
    Decoder decoder(config);
    model = make_trainable(decoder);
    model->module().to(device);
    model->module().train();
    if (uses_libtorch_adamw(name)) {
      const ParameterGroups groups = split_parameters_for_decay(model->module());
      const TrainConfig& t = config.train;
      auto opts = [&](double wd) {
        return std::make_unique<torch::optim::AdamWOptions>(
            torch::optim::AdamWOptions(t.lr).betas({t.adam_beta1, t.adam_beta2}).eps(t.adam_eps).weight_decay(wd));
      };
      std::vector<torch::optim::OptimizerParamGroup> pg;
      pg.emplace_back(groups.decay, opts(t.weight_decay));
      pg.emplace_back(groups.no_decay, opts(0.0));
      optimizer = std::make_unique<torch::optim::AdamW>(pg, torch::optim::AdamWOptions(t.lr));
    } else {
      optimizer = make_optimizer(model->module(), config.train);
    }
    for (auto& p : model->module().parameters()) {
      if (p.requires_grad()) params.push_back(p);
    }
    source = std::make_unique<RandomBatches>(config.model.vocab_size, config.model.seq_len, config.train.seed);
    options.batch_size = config.train.batch_size;
    options.grad_accum = 1;
    options.seq_len = config.model.seq_len;
    options.lr = config.train.lr;
    options.grad_clip = config.train.grad_clip;
    options.bf16 = device.is_cuda();
    options.device = device;
    ek_sum.assign(static_cast<size_t>(config.model.n_layers), 0.0);
  }

  double run(bool timed) {
    sync(device);
    const auto t0 = Clock::now();
    last = train_step(step++, *model, *optimizer, params, *source, dist, options);
    sync(device);
    const double s = std::chrono::duration<double>(Clock::now() - t0).count();
    if (timed) {
      seconds.push_back(s);
      const torch::Tensor ek = last.active_experts_L.to(torch::kCPU, torch::kFloat64).contiguous();
      for (size_t l = 0; l < ek_sum.size(); ++l) ek_sum[l] += ek.data_ptr<double>()[l];
    }
    return s;
  }

  int64_t tokens_per_step() const { return options.batch_size * options.seq_len; }
  double step_seconds() const { return median(seconds); }
  std::vector<double> mean_active_experts() const {
    std::vector<double> ek = ek_sum;
    for (double& v : ek) v /= std::max<size_t>(1, seconds.size());
    return ek;
  }
  double flops_per_token() const { return model->flops_per_token(mean_active_experts()).value_or(0.0); }

  json describe() const {
    const double s = step_seconds();
    const double fpt = flops_per_token();
    return {{"config", name},
            {"router", config.router.type},
            {"n_experts", config.model.n_experts},
            {"k", config.model.n_experts_active},
            {"step_seconds", s},
            {"step_seconds_all", seconds},
            {"tokens_per_step", tokens_per_step()},
            {"tokens_per_s", tokens_per_step() / s},
            {"active_experts_per_layer", mean_active_experts()},
            {"flops_per_token", fpt},
            // without the router's own matmuls: the compute the measured E[k] alone asks for
            {"flops_per_token_without_router", ::dirmoe::flops_per_token(config.model, mean_active_experts(), 0.0).training()},
            {"achieved_flops_per_s", fpt * tokens_per_step() / s},
            {"parameters", model->parameter_counts() ? model->parameter_counts()->total() : 0}};
  }
};

/// Interleaves the steps of `runners` (after `warmup` untimed steps each) for `repeats` rounds;
/// `after_round`, when given, runs after each timed round.
void interleave(std::vector<StepRunner*> runners, int warmup, int repeats,
                const std::function<void()>& after_round = {}) {
  for (int i = 0; i < warmup; ++i) {
    for (auto* r : runners) r->run(false);
  }
  for (int i = 0; i < repeats; ++i) {
    // Alternate the order each round so neither runner always follows the other.
    if (i % 2) std::reverse(runners.begin(), runners.end());
    for (auto* r : runners) r->run(true);
    if (i % 2) std::reverse(runners.begin(), runners.end());
    if (after_round) after_round();
  }
}

/// The square-matmul FLOP/s of one short sample (best of 3 timings of 1 product of n = 1024 in fp32
/// on the CPU, of 20 back-to-back products of n = 4096 in bf16 on CUDA, where one alone is too short
/// to time with the host clock), taken after each round of interleaved steps: the GEMM rate under
/// the load the round's steps saw. MFU against it pairs numerator and denominator in time.
double gemm_rate_sample(const torch::Device& device) {
  const auto dtype = device.is_cuda() ? torch::kBFloat16 : torch::kFloat32;
  const int64_t n = device.is_cuda() ? 4096 : 1024;
  const int products = device.is_cuda() ? 20 : 1;
  const auto opts = torch::TensorOptions().dtype(dtype).device(device);
  const torch::Tensor a = torch::randn({n, n}, opts), b = torch::randn({n, n}, opts);
  torch::Tensor c = torch::matmul(a, b);
  double best = 0;
  for (int r = 0; r < 3; ++r) {
    sync(device);
    const auto t0 = Clock::now();
    for (int i = 0; i < products; ++i) c = torch::matmul(a, b);
    sync(device);
    best = std::max(best, 2.0 * n * n * n * products / std::chrono::duration<double>(Clock::now() - t0).count());
  }
  return best;
}

/// Median over rounds of runner's achieved FLOP/s in round i over the GEMM rate sampled after round i
/// (rates[i]); runner.seconds[first + i] is its step of round i.
double mfu_in_round(const StepRunner& runner, size_t first, const std::vector<double>& rates) {
  std::vector<double> fractions;
  const double flops_per_step = runner.flops_per_token() * static_cast<double>(runner.tokens_per_step());
  for (size_t i = 0; i < rates.size() && first + i < runner.seconds.size(); ++i) {
    fractions.push_back(flops_per_step / runner.seconds[first + i] / rates[i]);
  }
  return fractions.empty() ? 0.0 : median(fractions);
}

/// Best fp32 (CPU) or bf16 (CUDA) square-matmul FLOP/s LibTorch reaches here, over a few sizes.
json peak_gemm(const torch::Device& device) {
  const auto dtype = device.is_cuda() ? torch::kBFloat16 : torch::kFloat32;
  const std::vector<int64_t> sizes = device.is_cuda() ? std::vector<int64_t>{4096, 8192} : std::vector<int64_t>{1024, 2048};
  double best = 0;
  int64_t best_n = 0;
  json all = json::object();
  for (int64_t n : sizes) {
    const auto opts = torch::TensorOptions().dtype(dtype).device(device);
    const torch::Tensor a = torch::randn({n, n}, opts), b = torch::randn({n, n}, opts);
    torch::Tensor c = torch::matmul(a, b);  // warm-up
    const int reps = device.is_cuda() ? 20 : 3;
    std::vector<double> rates;
    for (int r = 0; r < 5; ++r) {
      sync(device);
      const auto t0 = Clock::now();
      for (int i = 0; i < reps; ++i) c = torch::matmul(a, b);
      sync(device);
      const double s = std::chrono::duration<double>(Clock::now() - t0).count();
      rates.push_back(2.0 * n * n * n * reps / s);
    }
    const double rate = *std::max_element(rates.begin(), rates.end());
    all[std::to_string(n)] = rate;
    if (rate > best) best = rate, best_n = n;
  }
  return {{"flops_per_s", best}, {"dtype", device.is_cuda() ? "bf16" : "fp32"}, {"n", best_n}, {"by_size", all}};
}

/// The layer benchmarks' input (per_layer, profile_layer): x_TD [T, D] requiring grad, T the scale's
/// tokens per step, and g_TD [T, D], the upstream gradient; one pass is the loss ⟨y, g⟩ (+ the
/// layer's auxiliary losses) and its backward.
struct LayerPassInputs {
  torch::Tensor x_TD, g_TD;
  mutable int64_t next_draw = 0;  // the noise key's draw number of the next pass

  LayerPassInputs(const Config& base, const torch::Device& device) {
    const int64_t T = base.train.batch_size * base.model.seq_len;
    torch::manual_seed(0);
    const auto opts = torch::TensorOptions().device(device);
    x_TD = torch::randn({T, base.model.d_model}, opts).requires_grad_(true);
    g_TD = torch::randn({T, base.model.d_model}, opts);
  }

  /// A fresh key per pass (moe_pass, router_pass), as train_step sets one per forward.
  RouterNoiseKey next_noise_key() const {
    return RouterNoiseKey{/*seed=*/1, /*draw=*/next_draw++, /*layer=*/0, /*token_offset=*/0};
  }

  /// One pass of `layer` with a fresh router noise key, as train_step sets one per forward: the
  /// routers then draw their noise from the counter-based streams the trainer uses
  /// (router_noise_source.h), whose cost is part of the layer's.
  void moe_pass(MoeLayer& layer) const {
    layer->set_noise_key(next_noise_key());
    layer->zero_grad();
    x_TD.mutable_grad() = torch::Tensor();
    MoeLayerOutput out = layer->forward(x_TD);
    torch::Tensor loss = (out.y_TD * g_TD).sum();
    for (const auto& [name, v] : out.aux_losses) loss = loss + v;
    loss.backward();
  }

  /// The router of `layer` alone: forward and backward of ⟨weights, g_TE⟩ + its auxiliary losses,
  /// with a fresh noise key as moe_pass sets one (g_TE [T, E], the combine weights' upstream gradient).
  void router_pass(MoeLayer& layer, const torch::Tensor& g_TE) const {
    RouterImpl& router = layer->router();
    router.zero_grad();
    x_TD.mutable_grad() = torch::Tensor();
    RouterNoise noise;
    noise.key = next_noise_key();
    RouterOutput out = router.forward(x_TD, noise);
    torch::Tensor loss = (out.weights_TE * g_TE).sum();
    for (const auto& [name, v] : out.aux_losses) loss = loss + v;
    loss.backward();
  }

  /// The dense SwiGLU of one expert's size (`dense` holds one expert).
  void dense_pass(SwigluExperts& dense) const {
    dense->zero_grad();
    x_TD.mutable_grad() = torch::Tensor();
    swiglu(x_TD, dense->w_gate[0], dense->w_up[0], dense->w_down[0]).backward(g_TD);
  }
};

/// Forward+backward of one MoeLayer per router at E=8, k=1 (T tokens), against the topk layer,
/// and the topk layer (fused experts, and the per-expert loop) against a dense SwiGLU of one
/// expert's size; then each router alone against top-k's.
json per_layer(const Config& base, const torch::Device& device, int repeats, int router_repeats) {
  const int64_t T = base.train.batch_size * base.model.seq_len;
  const int64_t D = base.model.d_model;
  const LayerPassInputs inputs(base, device);
  std::vector<std::string> names = {"topk"};
  for (const auto& r : registered_routers()) {
    if (r != "topk") names.push_back(r);
  }
  // DirMoE once more with its α MLP in bf16 (the step's autocast decides for "dirmoe"; these passes run
  // without autocast, so "dirmoe" is its float32 form here)
  names.push_back("dirmoe" + kAlphaBf16);
  // Every router with the fused experts; topk and dirmoe once more with the per-expert autograd
  // loop (the experts' former CPU path): before and after, in the same run.
  std::vector<MoeLayer> layers;
  std::vector<std::pair<std::string, bool>> cases;  // (router, fused)
  for (const auto& n : names) cases.emplace_back(n, true);
  for (const auto& n : names) {
    if (n == "topk" || n == "dirmoe") cases.emplace_back(n, false);
  }
  for (const auto& [n, fused] : cases) {
    torch::manual_seed(1);
    layers.emplace_back(variant(base, n), 0, make_router(variant(base, n)));
    layers.back()->to(device);
    layers.back()->train();
    layers.back()->experts()->set_fused(fused);
  }
  SwigluExperts dense(1, D, base.model.d_ff, base.model.init_std);
  dense->to(device);
  auto time_it = [&](const std::function<void()>& fn) {
    sync(device);
    const auto t0 = Clock::now();
    fn();
    sync(device);
    return std::chrono::duration<double>(Clock::now() - t0).count();
  };
  std::vector<std::function<void()>> fns;
  for (auto& layer : layers) fns.push_back([&layer, &inputs] { inputs.moe_pass(layer); });
  fns.push_back([&] { inputs.dense_pass(dense); });
  std::vector<std::vector<double>> times(fns.size());
  for (auto& fn : fns) fn();  // warm-up
  // Each round runs every pass once, in an order shuffled anew (seeded): a pass's time depends on
  // what ran just before it (caches, the allocator's free lists), and a fixed order would give each
  // layer the same neighbour in every round.
  std::vector<size_t> order(fns.size());
  for (size_t i = 0; i < order.size(); ++i) order[i] = i;
  // NOTE: Fisher–Yates on the engine's raw words, whose sequence the standard fixes (std::shuffle and
  // the distributions are each library's own): the same orders with every standard library.
  std::mt19937 order_rng(/*seed=*/1);
  for (int r = 0; r < repeats; ++r) {
    for (size_t i = order.size(); i > 1; --i) std::swap(order[i - 1], order[order_rng() % i]);
    for (size_t i : order) times[i].push_back(time_it(fns[i]));
  }
  json out = {{"tokens", T}, {"d_model", D}, {"d_ff", base.model.d_ff}, {"n_experts", base.model.n_experts},
              {"k", base.model.n_experts_active}, {"repeats", repeats}, {"order", "shuffled per round (seed 1)"}};
  // The ratios are medians of the per-round ratios (paired_ratio), with their 95% intervals; the
  // layers' own medians are kept beside them as seconds.
  // NOTE: the minima (noise only ever adds time) are kept too, since on a busy machine the many small
  // GEMMs of a MoE layer lose more to preemption than the dense layer's few large ones.
  auto fastest = [](const std::vector<double>& v) { return *std::min_element(v.begin(), v.end()); };
  size_t topk_loop = 0;  // the top-k layer with the per-expert loop
  for (size_t i = 0; i < cases.size(); ++i) {
    if (cases[i].first == "topk" && !cases[i].second) topk_loop = i;
  }
  const double topk_s = median(times[0]), topk_min = fastest(times[0]);
  const double topk_loop_s = median(times[topk_loop]), topk_loop_min = fastest(times[topk_loop]);
  json routers = json::object();
  for (size_t i = 0; i < cases.size(); ++i) {
    const std::string& name = cases[i].first;
    const double s = median(times[i]), s_min = fastest(times[i]);
    if (cases[i].second) {
      torch::NoGradGuard no_grad;
      const double ek = layers[i]->forward(inputs.x_TD).metrics.active_experts.item<double>();
      const PairedRatio ratio = paired_ratio(times[i], times[0]);
      routers[name] = {{"seconds", s},
                       {"over_topk", ratio.median},
                       {"over_topk_interval", paired_ratio_json(ratio)},
                       {"active_experts", ek},
                       {"seconds_min", s_min},
                       {"over_topk_min", s_min / topk_min},
                       {"seconds_per_round", times[i]}};
    } else {
      const PairedRatio ratio = paired_ratio(times[i], times[topk_loop]);
      routers[name]["loop_seconds"] = s;
      routers[name]["loop_over_topk_loop"] = ratio.median;
      routers[name]["loop_over_topk_loop_interval"] = paired_ratio_json(ratio);
      routers[name]["loop_over_topk_loop_min"] = s_min / topk_loop_min;
      routers[name]["loop_seconds_per_round"] = times[i];
    }
  }
  // The routers alone, interleaved, `router_repeats` rounds: each one's cost over top-k's in
  // milliseconds and as a share of the top-k layer's pass. The layer ratios above carry the experts'
  // GEMMs, whose spread from pass to pass (about 1% of a pass on a 2-core machine) is as large as the
  // routers' differences; without them the medians settle to a few hundredths of a millisecond.
  {
    const torch::Tensor g_TE = torch::randn({T, base.model.n_experts}, inputs.x_TD.options());
    std::vector<std::vector<double>> router_times(names.size());
    for (size_t i = 0; i < names.size(); ++i) inputs.router_pass(layers[i], g_TE);  // warm-up
    for (int r = 0; r < router_repeats; ++r) {
      for (size_t i = 0; i < names.size(); ++i) {
        router_times[i].push_back(time_it([&] { inputs.router_pass(layers[i], g_TE); }));
      }
    }
    const double topk_router_s = median(router_times[0]);
    for (size_t i = 0; i < names.size(); ++i) {
      const double s = median(router_times[i]);
      routers[names[i]]["router_seconds"] = s;
      routers[names[i]]["router_over_topk_ms"] = (s - topk_router_s) * 1e3;
      routers[names[i]]["router_over_topk_share_of_layer"] = (s - topk_router_s) / topk_s;
    }
    out["router_repeats"] = router_repeats;
  }
  out["routers"] = routers;
  const double dense_s = median(times.back());
  const PairedRatio moe_over_dense = paired_ratio(times[0], times.back());
  const PairedRatio moe_loop_over_dense = paired_ratio(times[topk_loop], times.back());
  out["dense_seconds"] = dense_s;
  out["dense_seconds_per_round"] = times.back();
  out["moe_over_dense"] = moe_over_dense.median;
  out["moe_over_dense_interval"] = paired_ratio_json(moe_over_dense);
  out["moe_loop_seconds"] = topk_loop_s;
  out["moe_loop_over_dense"] = moe_loop_over_dense.median;
  out["moe_loop_over_dense_interval"] = paired_ratio_json(moe_loop_over_dense);
  const double dense_min = fastest(times.back());
  out["moe_over_dense_min"] = topk_min / dense_min;
  out["moe_loop_over_dense_min"] = topk_loop_min / dense_min;
  return out;
}

/// One MoeLayer's forward+backward (T tokens of the scale, loss ⟨y, g⟩ + its auxiliary losses, as
/// per_layer times it) under the autograd profiler, for each of `routers` ("dense": the SwiGLU of one
/// expert): `repeats` rounds after `warmup`, the layers' passes alternating within a round (the order
/// reversed every other round, as interleave does), so that a busy machine slows every side alike.
/// Each pass is a span "bench::layer_pass ROUTER" in the trace written to `trace_path`;
/// bench/profile_summary.py --pair A B splits the trace by those spans.
json profile_layer(const Config& base, const torch::Device& device, const std::vector<std::string>& routers, int warmup,
                   int repeats, const std::string& trace_path) {
  const int64_t T = base.train.batch_size * base.model.seq_len;
  const int64_t D = base.model.d_model;
  const LayerPassInputs inputs(base, device);
  for (size_t i = 0; i < routers.size(); ++i) {
    for (size_t j = 0; j < i; ++j) {
      if (routers[i] == routers[j]) throw std::invalid_argument("profile: layer '" + routers[i] + "' named twice");
    }
  }
  std::vector<MoeLayer> layers;
  std::vector<SwigluExperts> denses;
  std::vector<std::pair<std::string, std::function<void()>>> passes;
  layers.reserve(routers.size());
  denses.reserve(routers.size());
  for (const std::string& router : routers) {
    torch::manual_seed(1);  // each layer's weights as when it is profiled alone
    if (router == "dense") {
      denses.emplace_back(1, D, base.model.d_ff, base.model.init_std);
      denses.back()->to(device);
      passes.emplace_back(router, [&inputs, &dense = denses.back()] { inputs.dense_pass(dense); });
    } else {
      const Config c = variant(base, router);
      layers.emplace_back(c, 0, make_router(c));
      layers.back()->to(device);
      layers.back()->train();
      passes.emplace_back(router, [&inputs, &layer = layers.back()] { inputs.moe_pass(layer); });
    }
  }
  for (int i = 0; i < warmup; ++i) {
    for (auto& [name, pass] : passes) pass();
  }
  sync(device);
  {
    torch::autograd::profiler::RecordProfile guard(trace_path);
    for (int i = 0; i < repeats; ++i) {
      if (i % 2) std::reverse(passes.begin(), passes.end());
      for (auto& [name, pass] : passes) {
        at::RecordFunction span(at::RecordScope::USER_SCOPE);
        if (span.isActive()) span.before("bench::layer_pass " + name);
        pass();
        sync(device);
      }
      if (i % 2) std::reverse(passes.begin(), passes.end());
    }
  }
  return {{"layers", routers}, {"tokens", T}, {"d_model", D}, {"d_ff", base.model.d_ff},
          {"n_experts", base.model.n_experts}, {"k", base.model.n_experts_active}, {"repeats", repeats}};
}

json environment(const torch::Device& device, const std::string& scale, const Config& c) {
  json env = {{"git_revision", git_revision()},
              {"threads", torch::get_num_threads()},
              {"device", device.str()},
              {"scale", scale},
              {"model", {{"d_model", c.model.d_model}, {"n_layers", c.model.n_layers}, {"n_heads", c.model.n_heads},
                         {"n_kv_heads", c.model.n_kv_heads}, {"d_ff", c.model.d_ff}, {"seq_len", c.model.seq_len},
                         {"vocab_size", c.model.vocab_size}, {"n_experts", c.model.n_experts},
                         {"k", c.model.n_experts_active}}},
              {"batch_size", c.train.batch_size},
              {"precision", device.is_cuda() ? "bf16-autocast" : "fp32"},
              // DirMoE's routing chain and Dirichlet KL as dirmoe's CUDA kernels (element_kernels.h): the
              // switch, and whether they ran on this device (built, switched on, CUDA)
              {"cuda_element_kernels", cuda_element_kernels_enabled()},
              {"element_kernels_ran", device.is_cuda() && element_passes_on(device)}};
  return env;
}

}  // namespace

int main(int argc, char** argv) {
  CLI::App app{"dirmoe benchmark measurements (JSON on stdout)"};
  app.require_subcommand(1);
  std::string scale = "d512", device_name = "cpu", router = "topk", out_path;
  int64_t threads = 0, batch = 0;
  int repeats = 4, warmup = 1, layer_repeats = 20, router_repeats = 60;
  std::vector<std::string> routers;
  bool caching_allocator = true, cuda_element_kernels = true;
  for (CLI::App* sub : {app.add_subcommand("suite", "interleaved comparisons"),
                        app.add_subcommand("step", "one configuration alone (time and peak memory)"),
                        app.add_subcommand("profile", "one configuration under the autograd profiler")}) {
    sub->add_option("--scale", scale, "d512 | tiny | llama185m");
    sub->add_option("--device", device_name, "cpu | cuda");
    sub->add_option("--threads", threads, "intra-op threads (0: all cores, as dirmoe-train)");
    sub->add_option("--batch", batch, "sequences per step (0: the scale's)");
    sub->add_option("--repeats", repeats, "timed steps per configuration");
    sub->add_option("--warmup", warmup, "untimed steps first");
    sub->add_option("--out", out_path, "also write the JSON here");
    sub->add_option("--caching-allocator", caching_allocator, "install dirmoe's CPU caching allocator (dirmoe-train does)");
    sub->add_option("--cuda-element-kernels", cuda_element_kernels,
                    "DirMoE's routing chain and Dirichlet KL as dirmoe's CUDA kernels where built (false: as tensor "
                    "operators, their state before the kernels)");
  }
  app.get_subcommand("suite")
      ->add_option("--layer-repeats", layer_repeats, "interleaved MoE layer passes per layer")
      ->check(CLI::Range(1, 100000));
  app.get_subcommand("suite")
      ->add_option("--router-repeats", router_repeats, "interleaved passes of each router alone (forward and backward)")
      ->check(CLI::Range(1, 100000));
  app.get_subcommand("suite")->add_option("--routers", routers,
                                          "configurations compared with topk (default: every registered router, "
                                          "topk+libtorch_adamw and dense)");
  app.get_subcommand("step")->add_option("--router", router, "a router type, or dense");
  std::string recipe;
  std::vector<std::string> overrides;
  app.get_subcommand("step")->add_option("--config", recipe,
                                         "a recipe (experiments/configs/*.json): its model, router and batch size "
                                         "instead of the scale's; vocab_size 0 takes the scale's");
  app.get_subcommand("step")->add_option("--set", overrides, "config override a.b=value for --config (repeatable)");
  std::string trace_path = "bench_trace.json";
  app.get_subcommand("profile")->add_option("--router", router, "a router type, or dense");
  std::vector<std::string> versus;
  app.get_subcommand("profile")->add_option("--versus", versus,
                                            "with --layer: further layers (router types or dense) whose passes "
                                            "alternate with --router's in the same trace");
  app.get_subcommand("profile")->add_option("--trace", trace_path, "chrome trace written here (bench/profile_summary.py reads it)");
  bool profile_one_layer = false;
  app.get_subcommand("profile")->add_flag("--layer", profile_one_layer,
                                          "one MoE layer's forward+backward instead of a train step");
  CLI11_PARSE(app, argc, argv);
  try {
    if (caching_allocator) install_cpu_caching_allocator();  // as dirmoe-train does
    set_cuda_element_kernels_enabled(cuda_element_kernels);
    torch::set_num_threads(threads > 0 ? static_cast<int>(threads)
                                       : static_cast<int>(std::max(1u, std::thread::hardware_concurrency())));
    const torch::Device device(device_name);
    Config base = scale_config(scale, device_name);
    if (batch > 0) base.train.batch_size = batch;
    json result = environment(device, scale, base);
    if (device.is_cuda()) torch::cuda::synchronize();

    if (*app.get_subcommand("profile") && profile_one_layer) {
      std::vector<std::string> profiled = {router};
      profiled.insert(profiled.end(), versus.begin(), versus.end());
      result["profile"] = profile_layer(base, device, profiled, warmup, repeats, trace_path);
      result["trace"] = trace_path;
    } else if (*app.get_subcommand("profile")) {
      if (!versus.empty()) throw std::invalid_argument("profile: --versus compares layers; add --layer");
      StepRunner r(router, variant(base, router), device);
      interleave({&r}, warmup, 0);
      {
        torch::autograd::profiler::RecordProfile guard(trace_path);
        interleave({&r}, 0, repeats);
      }
      result["step"] = r.describe();
      result["trace"] = trace_path;
    } else if (*app.get_subcommand("step")) {
      Config c = variant(base, router);
      std::string name = router;
      if (!recipe.empty()) {
        c = resolve_config(recipe, overrides);
        if (c.model.vocab_size == 0) c.model.vocab_size = base.model.vocab_size;
        c.train.device = device_name;
        if (batch > 0) c.train.batch_size = batch;
        name = c.router.type;
        result = environment(device, scale, c);
        result["config_file"] = recipe;
      }
      StepRunner r(name, c, device);
      interleave({&r}, warmup, repeats);
      result["step"] = r.describe();
      result["peak_rss_bytes"] = peak_rss_bytes();
      result["cuda_max_allocated_bytes"] = nullptr;
#ifdef DIRMOE_BENCH_CUDA_STATS
      if (device.is_cuda()) {
        const auto stats = c10::cuda::CUDACachingAllocator::getDeviceStats(device.index() < 0 ? 0 : device.index());
        result["cuda_max_allocated_bytes"] =
            stats.allocated_bytes[static_cast<size_t>(c10::CachingAllocator::StatType::AGGREGATE)].peak;
      }
#endif
    } else {
      if (routers.empty()) {
        for (const auto& r : registered_routers()) {
          if (r != "topk") routers.push_back(r);
        }
        routers.push_back("topk" + kLibtorchAdamw);
        routers.push_back("dense");
      }
      std::cerr << "bench_suite: peak GEMM\n";
      result["peak_gemm"] = peak_gemm(device);
      std::cerr << "bench_suite: per-layer forward+backward\n";
      result["per_layer"] = per_layer(base, device, layer_repeats, router_repeats);
      // topk stays alive; every other configuration is built in turn and interleaved with it.
      StepRunner topk("topk", variant(base, "topk"), device);
      json pairs = json::array();
      const std::vector<std::string>& others = routers;
      std::vector<double> all_rates;  // the GEMM rate after each round, over every pair (topk's rounds)
      for (const auto& name : others) {
        std::cerr << "bench_suite: train step topk vs " << name << "\n";
        const size_t before = topk.seconds.size();
        StepRunner other(name, variant(base, name), device);
        std::vector<double> rates;
        interleave({&topk, &other}, warmup, repeats, [&] { rates.push_back(gemm_rate_sample(device)); });
        all_rates.insert(all_rates.end(), rates.begin(), rates.end());
        const std::vector<double> topk_here(topk.seconds.begin() + static_cast<int64_t>(before), topk.seconds.end());
        json o = other.describe();
        o["gemm_rate_after_each_round"] = rates;
        o["mfu_in_round_median"] = mfu_in_round(other, 0, rates);
        o["topk_step_seconds"] = median(topk_here);
        // the median of the per-round ratios (the two steps of a round ran next to each other)
        const PairedRatio step_ratio = paired_ratio(other.seconds, topk_here);
        o["over_topk"] = step_ratio.median;
        o["over_topk_interval"] = paired_ratio_json(step_ratio);
        // Routers whose E[k] is not yet k (ReMoE's λ and DirMoE's gates adapt during training)
        // compute more experts: the ratio per unit of that compute isolates the router's own cost.
        const json t = topk.describe();
        o["over_topk_at_equal_expert_compute"] =
            o["over_topk"].get<double>() / (o["flops_per_token_without_router"].get<double>() /
                                            t["flops_per_token_without_router"].get<double>());
        pairs.push_back(o);
      }
      result["topk"] = topk.describe();
      result["topk"]["mfu_in_round_median"] = mfu_in_round(topk, 0, all_rates);
      result["pairs"] = pairs;
    }
    const std::string text = result.dump();
    std::cout << text << std::endl;
    if (!out_path.empty()) std::ofstream(out_path) << text << "\n";
  } catch (const std::exception& e) {
    std::cerr << "bench_suite: error: " << e.what() << "\n";
    return 1;
  }
  return 0;
}
