#pragma once
// The run configuration: nested plain structs with their defaults, JSON load/save, `--set`
// overrides and one validate(). Defaults marked [ours] are this toolkit's choice where the papers
// give no number; [paper] values come from the cited paper; [ReMoE]/[GRIN]/[Switch] from those.
//
// JSON layout mirrors the structs: {"model": {...}, "router": {"type": ..., "topk": {...},
// "remoe": {...}, "sparsemixer": {...}, "dirmoe": {...}}, "train": {...}, "data": {...},
// "eval": {...}}. Unknown keys are rejected with their full path and the nearest valid name.
#include <cstdint>
#include <map>
#include <string>
#include <vector>

#include <nlohmann/json_fwd.hpp>

namespace dirmoe {

/// LLaMA-style decoder (DESIGN.md "Model"); reference values are ReMoE's 182M setup.
struct ModelConfig {
  int64_t vocab_size = 0;        // 0: take it from the data manifest's tokenizer
  int64_t d_model = 768;
  int64_t n_layers = 12;
  int64_t n_heads = 12;
  int64_t n_kv_heads = 4;        // grouped-query attention groups; must divide n_heads
  int64_t d_ff = 3072;           // hidden size of each SwiGLU expert
  int64_t seq_len = 1024;        // training context window
  int64_t n_experts = 8;         // E
  int64_t n_experts_active = 1;  // k: expected active experts per token, the compute-parity target
  double capacity_factor = 0.0;  // 0: dropless; >0: per-expert capacity = cf·T·k/E, overflow dropped
  // Expert parallelism N: each of N processes holds E/N experts of every layer and tokens reach them by
  // all-to-all (docs/parallel.md); N divides n_experts and the number of processes. 1: every process
  // holds every expert (plain data parallel). A run's checkpoints hold the full model whatever N was.
  int64_t expert_parallel = 1;
  double rope_theta = 10000.0;
  double norm_eps = 1e-5;
  double init_std = 0.01;        // normal init of every weight matrix
};

/// Softmax top-k / Switch (k=1) router [Switch].
struct TopkRouterConfig {
  bool renormalize = false;     // renormalise the k selected probabilities to sum to 1
  double balance_coef = 1e-2;   // α in α·E·Σ_e f_e·P_e
  double z_loss_coef = 1e-3;    // coefficient of mean(logsumexp(logits)²)
  double jitter = 0.0;          // multiplicative input jitter ε: x·U(1−ε, 1+ε) in training
};

/// ReMoE: ReLU routing with an adaptive L1 regulariser [ReMoE].
struct RemoeRouterConfig {
  double lambda_init = 1e-8;    // λ0
  double lambda_factor = 1.2;   // λ ← λ·factor when sparsity is below target, else λ/factor
};

/// SparseMixer-v2 [GRIN].
struct SparseMixerRouterConfig {
  double jitter_eps = 0.01;     // ε: experts with (z*−z_i)/max(|z_i|, z*) > 2ε are masked
  double balance_coef = 1e-2;   // the Switch balance loss coefficient
};

/// DirMoE: spike-and-slab routing on the simplex (arXiv 2602.09001 §3–5, DESIGN.md). The method
/// as implemented, each constant's provenance and the measurements that chose the [ours] values:
/// docs/dirmoe.md.
struct DirmoeRouterConfig {
  // "topk": dispatch the k largest ℓ + g (exactly k per token) [ours, docs/dirmoe.md H6];
  // "hard": the experts with z̃ > 0.5 (ℓ + g > 0), a token with none keeps argmax(ℓ + g);
  // "soft": every expert (dense ablation)
  std::string selection = "topk";
  // Binary-Concrete temperature τ_z(t) = max(tau_min, tau_start·tau_decay^t)
  double tau_start = 2.0;           // [paper, via secondary notes]
  double tau_min = 0.5;             // [ours]
  double tau_decay = 0.9995;        // [ours] per step
  // posterior concentration scale and the α heads
  double lambda_q = 20.0;           // [paper, via secondary notes]
  int64_t alpha_hidden = 256;       // hidden width of the α_hi/α_lo MLP [paper, via secondary notes]
  double alpha_eps = 1e-6;          // softplus(·)+eps floor [paper, via secondary notes]
  // [ours] θ̃ = (1−theta_mix)·θ + theta_mix/E before r = normalize(z ⊙ θ̃): bounds the
  // renormalisation's straight-through gradient when the dispatched experts drew θ ≈ 0; 0 disables
  double theta_mix = 1e-3;
  // prior Dir(λ^p·(z̃·a_hi + (1−z̃)·a_lo)); λ^p moves from lambda_p_start to lambda_p_end
  double a_hi = 1.985;              // [paper, via secondary notes]
  double a_lo_start = 0.005;        // [paper, via secondary notes] a_lo at step 0
  double a_lo_end = 0.001;          // [ours] a_lo(t) = end + (start−end)·a_lo_gamma^(t/a_lo_eta)
  double a_lo_gamma = 0.5;          // [ours]
  double a_lo_eta = 1000.0;         // [ours] steps per factor of a_lo_gamma
  double lambda_p_start = 2.0;      // [ours] flat prior early
  double lambda_p_end = 0.5;        // [paper value 0.5, reached by a schedule of ours]
  double lambda_p_steps = 2000.0;   // [ours] linear ramp length in steps
  double prior_pi = 0.0;            // Bernoulli prior π; 0: k/E
  // loss coefficients: L = recon + β_θ·KL_Dir + λ_sparsity·(Σz̃−k)² + β_z·KL_Bern
  double beta_theta = 0.01;         // [paper, via secondary notes]
  // [ours, docs/dirmoe.md H11: 10 held the routing at 300 steps but its gradient outgrew the LM's by step 1,000;
  // 1 keeps the load even and trains; paper: 0.01 with its per-token relaxed penalty]
  double lambda_sparsity = 1.0;
  double beta_z = 0.0;              // Bernoulli KL toward π, off by default
  // σ² of the Gaussian reconstruction; 0: d_model, a unit variance per dimension of x [ours, docs/dirmoe.md H2;
  // paper, via secondary notes: 1]
  double recon_variance = 0.0;
  bool schedules = true;            // false: τ, a_lo and λ^p stay at their start values (ablation)
  // ---- choices measured in docs/dirmoe.md (each an ablation variant of experiments/sweeps/ablate_dirmoe.sh)
  // routing weights: "all": r = normalize(z̃ ⊙ θ) over all E experts [paper], each dispatched expert keeps
  // its r_i (the undispatched share is dropped, as Switch keeps p_j) [ours, H1]; "dispatched": renormalised
  // over the dispatched experts (r_j = 1 at k = 1, so the selected gate gets no LM gradient)
  std::string weights = "all";
  // gate bias at step 0: "logit": logit(k/E), so that P(ℓ_i + g_i > 0) = k/E [ours, H4];
  // "tau_logit": τ_0·logit(k/E) [paper, via secondary notes]
  std::string gate_bias_init = "logit";
  // ℓ = (W·x − mean_e W·x) + b: the token-wide level of the logits removed [ours, H4]
  bool center_logits = true;
  // "expected": λ_s·mean_t E_g[(n_t − k)²] for the hard count n_t = #{i: ℓ_ti + g_ti > 0}, exactly
  // Σ_i p_ti(1 − p_ti) + (Σ_i p_ti − k)² with p = σ(ℓ) (no temperature) [ours, H3];
  // "token": λ_s·mean_t (Σ_i z̃_ti − k)² [paper]; "batch": λ_s·(mean_t Σ_i z̃_ti − k)²
  std::string sparsity_penalty = "expected";
  // > 1: λ_s adapts per layer after every optimiser step, ×factor when the step's mean number of selected
  // experts (ℓ + g > 0, before the fallback) is above k and ÷factor when below (starting from
  // lambda_sparsity, kept in [1e-4, 1e4]); 0: λ_s fixed
  double sparsity_control = 0.0;
  // β_u·Σ_e KL(Bern(ρ_e) ‖ Bern(π)), ρ_e = mean_t σ(ℓ_te): each expert's batch rate of selection
  // (exactly P(ℓ + g > 0) under the Logistic noise) held at the prior's π; 0 disables [ours, H5; 10 → 1: H11]
  double usage_kl = 1.0;
  // α·E·Σ_e f_e·P_e as Switch (f_e: share of the batch's dispatched tokens, P_e: share of mean σ(ℓ_te));
  // 0 disables. Off by default, as in the paper: over 3 tiny seeds α = 0.3 gave no measurable gain
  // (val loss 5.639 ± 0.098 with it, 5.661 ± 0.070 without; load max/mean 2.64/2.19 vs 2.26/1.92)
  // [Switch's form; the default 0: paper, H5 of docs/dirmoe.md]
  double balance_coef = 0.0;
  // The usage KL's and the sparsity penalty's coefficients are multiplied by
  // s(t) = aux_scale_end + (1 − aux_scale_end)·0.5^(t / aux_scale_half_life): strong while the routing
  // forms, weaker once the gates have settled. 1: constant coefficients [ours, docs/dirmoe.md H11]
  double aux_scale_end = 1.0;
  double aux_scale_half_life = 100.0;  // steps [ours]
  // true: the auxiliary losses are computed from the router input detached, so they train the router's
  // own parameters and never the residual stream; the LM loss alone trains the trunk [ours, docs/dirmoe.md H8:
  // with the losses attached their gradient on the trunk was 2.8× the LM's at step 1,000]
  bool aux_detach_input = true;
  // The precision of the α MLP's hidden-layer GEMM (W_h·x, [T, D]·[D, H]) in training with gradients,
  // forward and backward: "fp32" in the router's parameter type like the rest of the router; "bf16" with
  // bf16 operands and a bf16 result (float32 accumulation), as autocast runs a linear layer, the bias added
  // after in the parameter type; "auto": bf16 when the training step runs under bf16 autocast (CUDA,
  // train.precision) with float32 parameters, else fp32. The gate's logits, which alone decide the
  // dispatch, the α heads and every [T, E] quantity stay in the parameter type; evaluation and forwards
  // without gradients run the whole router in it. bf16 needs weights = "all" (the routing chain node).
  // [ours, docs/dirmoe.md H14: no measurable effect on training over 3 seeds at 300 and 1,000 steps]
  std::string alpha_mlp_precision = "auto";
};

struct RouterConfig {
  std::string type = "dirmoe";      // "topk" | "remoe" | "sparsemixer" | "dirmoe"
  TopkRouterConfig topk;
  RemoeRouterConfig remoe;
  SparseMixerRouterConfig sparsemixer;
  DirmoeRouterConfig dirmoe;
};

struct TrainConfig {
  std::string device = "auto";      // "auto" | "cpu" | "cuda" | "cuda:N"
  uint64_t seed = 1234;
  int64_t threads = 0;              // intra-op threads; 0: all cores
  int64_t batch_size = 8;           // sequences per micro-batch (per process)
  int64_t grad_accum = 1;           // micro-batches per optimiser step
  int64_t max_steps = 1000;
  double lr = 5e-4;
  double lr_min = 5e-5;             // cosine floor
  double warmup_frac = 0.01;        // linear warm-up as a fraction of max_steps
  double weight_decay = 0.01;       // decoupled, matrices only
  double adam_beta1 = 0.9;
  double adam_beta2 = 0.999;
  double adam_eps = 1e-8;
  double grad_clip = 1.0;           // global L2 norm; 0 disables
  std::string precision = "auto";   // "auto" (bf16 autocast on CUDA, fp32 on CPU) | "fp32" | "bf16"
  int64_t log_every = 10;
  int64_t eval_every = 200;         // validation loss every N steps; 0 disables
  int64_t eval_batches = 8;
  int64_t ckpt_every = 200;
  int64_t keep_last = 2;            // checkpoints kept besides the best
  int64_t stats_every = 0;          // routing time series to routing_train.h5; 0 disables
  // Every N steps, the gradient norm of the LM loss and of each auxiliary loss apart, on the trunk, the
  // router and the gate parameters (metrics.jsonl "grad_norm_terms"); costs one extra backward pass per
  // loss term on those steps. 0 disables
  int64_t grad_norm_terms_every = 0;
  double parity_tolerance = 0.05;   // flag a layer whose measured E[k] strays further than this
  // Several processes: a collective (gradient all-reduce, all-to-all, ...) or store exchange that does not
  // complete within this many seconds ends every surviving rank with a message naming the collective, the
  // step and the ranks that had not arrived (exit code 4), Gloo and NCCL alike; 600 = c10d's usual 10 minutes
  double collective_timeout_s = 600.0;
};

struct DataConfig {
  std::string dir = "data/default";     // directory written by `dirmoe-data build`
  std::map<std::string, double> domain_weights;  // optional mixing weights by domain; empty: natural
};

struct EvalConfig {
  std::vector<std::string> tasks = {"heldout_cloze", "heldout_choice"};
  std::string task_dir = "";        // directory holding the user's task JSONL files
  int64_t batch_size = 16;
  int64_t max_examples = 0;         // per task; 0: all
  int64_t heldout_examples = 500;   // size of each built-in held-out task
  int64_t validation_tokens = 262144;  // validation-split tokens scored for perplexity; 0: skip
  uint64_t seed = 1234;
};

struct Config {
  ModelConfig model;
  RouterConfig router;
  TrainConfig train;
  DataConfig data;
  EvalConfig eval;

  /// Throws ConfigError naming the field and what to set if the values are inconsistent.
  void validate() const;
};

// ---- JSON ----------------------------------------------------------------------------------
nlohmann::json config_to_json(const Config& config);
/// Reads a (possibly partial) JSON object over the defaults. Unknown keys and wrong types throw
/// ConfigError with the key path (e.g. "router.dirmoe.tau_strat: unknown key; did you mean
/// router.dirmoe.tau_start?"). `origin` (a file name) prefixes the messages.
Config config_from_json(const nlohmann::json& json, const std::string& origin = "config");
/// Loads a JSON file; IoError if missing, ConfigError if malformed.
Config load_config_file(const std::string& path);
/// Applies one `a.b.c=value` override; the value is parsed to the existing field's type.
void apply_override(Config& config, const std::string& assignment);
/// Convenience: file (optional, "" for defaults) + overrides, then validate().
Config resolve_config(const std::string& path, const std::vector<std::string>& overrides);
/// Pretty JSON with `git_revision` beside the config, as written next to every output.
std::string config_report_json(const Config& config);

}  // namespace dirmoe
