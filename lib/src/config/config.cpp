#include "dirmoe/config/config.h"

#include <algorithm>
#include <limits>

#include <fmt/format.h>
#include <nlohmann/json.hpp>

#include "dirmoe/core/atomic_file.h"
#include "dirmoe/core/build_info.h"
#include "dirmoe/core/error.h"

namespace dirmoe {

// Field lists: one line per struct keeps JSON names identical to the C++ field names.
NLOHMANN_DEFINE_TYPE_NON_INTRUSIVE_WITH_DEFAULT(ModelConfig, vocab_size, d_model, n_layers, n_heads, n_kv_heads,
                                                d_ff, seq_len, n_experts, n_experts_active, capacity_factor,
                                                expert_parallel, rope_theta, norm_eps, init_std)
NLOHMANN_DEFINE_TYPE_NON_INTRUSIVE_WITH_DEFAULT(TopkRouterConfig, renormalize, balance_coef, z_loss_coef, jitter)
NLOHMANN_DEFINE_TYPE_NON_INTRUSIVE_WITH_DEFAULT(RemoeRouterConfig, lambda_init, lambda_factor)
NLOHMANN_DEFINE_TYPE_NON_INTRUSIVE_WITH_DEFAULT(SparseMixerRouterConfig, jitter_eps, balance_coef)
NLOHMANN_DEFINE_TYPE_NON_INTRUSIVE_WITH_DEFAULT(DirmoeRouterConfig, selection, tau_start, tau_min, tau_decay,
                                                lambda_q, alpha_hidden, alpha_eps, theta_mix, a_hi, a_lo_start, a_lo_end,
                                                a_lo_gamma, a_lo_eta, lambda_p_start, lambda_p_end,
                                                lambda_p_steps, prior_pi, beta_theta, lambda_sparsity, beta_z,
                                                recon_variance, schedules, weights, gate_bias_init,
                                                center_logits, sparsity_penalty, sparsity_control, usage_kl,
                                                balance_coef, aux_scale_end, aux_scale_half_life, aux_detach_input,
                                                alpha_mlp_precision)
NLOHMANN_DEFINE_TYPE_NON_INTRUSIVE_WITH_DEFAULT(RouterConfig, type, topk, remoe, sparsemixer, dirmoe)
NLOHMANN_DEFINE_TYPE_NON_INTRUSIVE_WITH_DEFAULT(TrainConfig, device, seed, threads, batch_size, grad_accum,
                                                max_steps, lr, lr_min, warmup_frac, weight_decay, adam_beta1,
                                                adam_beta2, adam_eps, grad_clip, precision, log_every, eval_every,
                                                eval_batches, ckpt_every, keep_last, stats_every, grad_norm_terms_every,
                                                parity_tolerance, collective_timeout_s)
NLOHMANN_DEFINE_TYPE_NON_INTRUSIVE_WITH_DEFAULT(DataConfig, dir, domain_weights)
NLOHMANN_DEFINE_TYPE_NON_INTRUSIVE_WITH_DEFAULT(EvalConfig, tasks, task_dir, batch_size, max_examples,
                                                heldout_examples, validation_tokens, seed)
NLOHMANN_DEFINE_TYPE_NON_INTRUSIVE_WITH_DEFAULT(Config, model, router, train, data, eval)

namespace {
using nlohmann::json;

size_t edit_distance(const std::string& a, const std::string& b) {
  std::vector<size_t> row(b.size() + 1);
  for (size_t j = 0; j <= b.size(); ++j) row[j] = j;
  for (size_t i = 1; i <= a.size(); ++i) {
    size_t diag = row[0];
    row[0] = i;
    for (size_t j = 1; j <= b.size(); ++j) {
      size_t up = row[j];
      row[j] = std::min({row[j] + 1, row[j - 1] + 1, diag + (a[i - 1] == b[j - 1] ? 0 : 1)});
      diag = up;
    }
  }
  return row[b.size()];
}

std::string join_path(const std::string& prefix, const std::string& key) {
  return prefix.empty() ? key : prefix + "." + key;
}

std::string nearest_key(const json& object, const std::string& key) {
  std::string best;
  size_t best_distance = std::numeric_limits<size_t>::max();
  for (auto it = object.begin(); it != object.end(); ++it) {
    size_t d = edit_distance(key, it.key());
    if (d < best_distance) {
      best_distance = d;
      best = it.key();
    }
  }
  return best;
}

const char* kind_name(const json& value) {
  if (value.is_boolean()) return "true/false";
  if (value.is_number_integer() || value.is_number_unsigned()) return "an integer";
  if (value.is_number()) return "a number";
  if (value.is_string()) return "a string";
  if (value.is_array()) return "a list";
  if (value.is_object()) return "an object";
  return "null";
}

bool same_kind(const json& expected, const json& given) {
  if (expected.is_boolean()) return given.is_boolean();
  if (expected.is_number_unsigned()) return given.is_number_unsigned() || (given.is_number_integer() && given.get<int64_t>() >= 0);
  if (expected.is_number_integer()) return given.is_number_integer();
  if (expected.is_number_float()) return given.is_number();
  if (expected.is_string()) return given.is_string();
  if (expected.is_array()) return given.is_array();
  if (expected.is_object()) return given.is_object();
  return true;
}

/// Merges `given` into `base` (the defaults) checking each key and type. An object whose default
/// is empty (e.g. data.domain_weights) is a free-form map and takes any keys.
void merge_checked(json& base, const json& given, const std::string& path, const std::string& origin) {
  if (!given.is_object()) {
    throw ConfigError(fmt::format("{}: {} must be an object, got {}", origin, path.empty() ? "the top level" : path,
                                  kind_name(given)));
  }
  const bool free_map = base.empty();
  for (auto it = given.begin(); it != given.end(); ++it) {
    const std::string key_path = join_path(path, it.key());
    if (!free_map && !base.contains(it.key())) {
      std::string hint = nearest_key(base, it.key());
      throw ConfigError(fmt::format("{}: {}: unknown key; did you mean {}?", origin, key_path,
                                    join_path(path, hint)));
    }
    if (free_map) {
      if (!it.value().is_number()) {
        throw ConfigError(fmt::format("{}: {} must be a number, got {}", origin, key_path, kind_name(it.value())));
      }
      base[it.key()] = it.value();
      continue;
    }
    json& slot = base[it.key()];
    if (slot.is_object()) {
      merge_checked(slot, it.value(), key_path, origin);
    } else if (!same_kind(slot, it.value())) {
      throw ConfigError(fmt::format("{}: {} must be {}, got {} ({})", origin, key_path, kind_name(slot),
                                    kind_name(it.value()), it.value().dump()));
    } else {
      if (slot.is_array()) {
        for (const auto& element : it.value()) {
          if (!element.is_string()) {
            throw ConfigError(fmt::format("{}: {} must be a list of strings", origin, key_path));
          }
        }
      }
      slot = it.value();
    }
  }
}

/// Parses `text` as the type of `slot` (the field's current value).
json parse_as(const json& slot, const std::string& text, const std::string& key_path) {
  auto fail = [&](const char* what) {
    return ConfigError(fmt::format("--set {}={}: expected {} for {}", key_path, text, what, key_path));
  };
  if (slot.is_boolean()) {
    if (text == "true" || text == "1") return true;
    if (text == "false" || text == "0") return false;
    throw fail("true or false");
  }
  if (slot.is_number_integer() || slot.is_number_unsigned()) {
    size_t used = 0;
    long long value = 0;
    try {
      value = std::stoll(text, &used);
    } catch (const std::exception&) {
      throw fail("an integer");
    }
    if (used != text.size()) throw fail("an integer");
    if (slot.is_number_unsigned() && value < 0) throw fail("a non-negative integer");
    if (slot.is_number_unsigned()) return static_cast<uint64_t>(value);
    return static_cast<int64_t>(value);
  }
  if (slot.is_number_float()) {
    size_t used = 0;
    double value = 0;
    try {
      value = std::stod(text, &used);
    } catch (const std::exception&) {
      throw fail("a number");
    }
    if (used != text.size()) throw fail("a number");
    return value;
  }
  if (slot.is_string()) return text;
  if (slot.is_array()) {
    // a,b,c  or a JSON list
    if (!text.empty() && text.front() == '[') {
      json parsed = json::parse(text, nullptr, false);
      if (parsed.is_discarded() || !parsed.is_array()) throw fail("a JSON list");
      return parsed;
    }
    json list = json::array();
    size_t start = 0;
    while (start <= text.size()) {
      size_t comma = text.find(',', start);
      std::string item = text.substr(start, comma == std::string::npos ? std::string::npos : comma - start);
      if (!item.empty()) list.push_back(item);
      if (comma == std::string::npos) break;
      start = comma + 1;
    }
    return list;
  }
  throw fail("a scalar");
}

}  // namespace

nlohmann::json config_to_json(const Config& config) { return json(config); }

Config config_from_json(const nlohmann::json& given, const std::string& origin) {
  json merged = json(Config{});
  merge_checked(merged, given, "", origin);
  try {
    return merged.get<Config>();
  } catch (const json::exception& e) {
    throw ConfigError(fmt::format("{}: {}", origin, e.what()));
  }
}

Config load_config_file(const std::string& path) {
  const std::string text = read_file(path);
  json parsed = json::parse(text, nullptr, /*allow_exceptions=*/false);
  if (parsed.is_discarded()) {
    // Re-parse with exceptions for the position of the error.
    try {
      json reparsed = json::parse(text);
      (void)reparsed;
    } catch (const json::exception& e) {
      throw ConfigError(fmt::format("{}: not valid JSON: {}", path, e.what()));
    }
    throw ConfigError(fmt::format("{}: not valid JSON", path));
  }
  return config_from_json(parsed, path);
}

void apply_override(Config& config, const std::string& assignment) {
  const size_t eq = assignment.find('=');
  if (eq == std::string::npos || eq == 0) {
    throw ConfigError(fmt::format("--set {}: expected KEY=VALUE, e.g. --set train.lr=3e-4", assignment));
  }
  try {
    (void)json(assignment).dump();  // the JSON writer checks the UTF-8 that config.json will need
  } catch (const json::type_error&) {
    throw ConfigError("--set: an argument is not valid UTF-8; check the shell quoting and the terminal's encoding");
  }
  const std::string key_path = assignment.substr(0, eq);
  const std::string text = assignment.substr(eq + 1);
  json tree = config_to_json(config);
  json* node = &tree;
  std::string walked;
  size_t start = 0;
  while (true) {
    size_t dot = key_path.find('.', start);
    std::string key = key_path.substr(start, dot == std::string::npos ? std::string::npos : dot - start);
    if (!node->is_object()) {
      throw ConfigError(fmt::format("--set {}: {} is not a section", assignment, walked));
    }
    const bool free_map = node->empty() && !walked.empty();
    if (!free_map && !node->contains(key)) {
      throw ConfigError(fmt::format("--set {}: {}: unknown key; did you mean {}?", assignment, join_path(walked, key),
                                    join_path(walked, nearest_key(*node, key))));
    }
    walked = join_path(walked, key);
    if (free_map) {
      if (dot != std::string::npos) throw ConfigError(fmt::format("--set {}: {} has no sub-keys", assignment, walked));
      (*node)[key] = parse_as(json(0.0), text, walked);
      break;
    }
    node = &(*node)[key];
    if (dot == std::string::npos) {
      if (node->is_object() && !node->empty()) {
        throw ConfigError(fmt::format("--set {}: {} is a section; set one of its fields, e.g. {}.{}", assignment,
                                      walked, walked, node->begin().key()));
      }
      if (node->is_object()) throw ConfigError(fmt::format("--set {}: use {}.NAME=VALUE", assignment, walked));
      *node = parse_as(*node, text, walked);
      break;
    }
    start = dot + 1;
  }
  config = config_from_json(tree, "--set " + assignment);
}

Config resolve_config(const std::string& path, const std::vector<std::string>& overrides) {
  Config config = path.empty() ? Config{} : load_config_file(path);
  for (const auto& assignment : overrides) apply_override(config, assignment);
  config.validate();
  return config;
}

std::string config_report_json(const Config& config) {
  json report;
  report["git_revision"] = git_revision();
  report["config"] = config_to_json(config);
  return report.dump(2) + "\n";
}

void Config::validate() const {
  auto need = [](bool ok, const std::string& message) {
    if (!ok) throw ConfigError(message);
  };
  const auto& m = model;
  need(m.vocab_size >= 0, "model.vocab_size must be >= 0 (0 takes it from the data manifest)");
  need(m.d_model > 0 && m.n_layers > 0 && m.d_ff > 0 && m.seq_len > 0,
       "model.d_model, model.n_layers, model.d_ff and model.seq_len must be positive");
  need(m.n_heads > 0 && m.d_model % m.n_heads == 0,
       fmt::format("model.d_model ({}) must be divisible by model.n_heads ({})", m.d_model, m.n_heads));
  need((m.d_model / m.n_heads) % 2 == 0, "model.d_model / model.n_heads must be even for rotary embeddings");
  need(m.n_kv_heads > 0 && m.n_heads % m.n_kv_heads == 0,
       fmt::format("model.n_heads ({}) must be divisible by model.n_kv_heads ({})", m.n_heads, m.n_kv_heads));
  need(m.n_experts >= 1, "model.n_experts must be >= 1");
  need(m.n_experts_active >= 1 && m.n_experts_active <= m.n_experts,
       fmt::format("model.n_experts_active must be in [1, model.n_experts={}]", m.n_experts));
  need(m.capacity_factor >= 0.0, "model.capacity_factor must be >= 0 (0 = dropless)");
  need(m.expert_parallel >= 1 && m.n_experts % m.expert_parallel == 0,
       fmt::format("model.expert_parallel ({}) must be >= 1 and divide model.n_experts ({}); set it to one of the "
                   "divisors of n_experts (1 = every process holds every expert)",
                   m.expert_parallel, m.n_experts));
  need(m.init_std > 0.0 && m.norm_eps > 0.0 && m.rope_theta > 0.0,
       "model.init_std, model.norm_eps and model.rope_theta must be positive");

  const auto& r = router;
  need(r.type == "topk" || r.type == "remoe" || r.type == "sparsemixer" || r.type == "dirmoe",
       fmt::format("router.type \"{}\" is not one of topk, remoe, sparsemixer, dirmoe", r.type));
  need(r.topk.balance_coef >= 0 && r.topk.z_loss_coef >= 0 && r.topk.jitter >= 0 && r.topk.jitter < 1,
       "router.topk: balance_coef and z_loss_coef must be >= 0, jitter in [0, 1)");
  need(r.remoe.lambda_init > 0 && r.remoe.lambda_factor > 1,
       "router.remoe.lambda_init must be > 0 and router.remoe.lambda_factor > 1");
  need(r.type != "remoe" || m.n_experts_active < m.n_experts,
       "router.type remoe needs model.n_experts_active < model.n_experts (target sparsity 1-k/E > 0)");
  need(r.sparsemixer.jitter_eps > 0 && r.sparsemixer.balance_coef >= 0,
       "router.sparsemixer.jitter_eps must be > 0 and balance_coef >= 0");
  need(r.type != "sparsemixer" || m.n_experts_active <= 2,
       "router.type sparsemixer supports model.n_experts_active 1 or 2");
  const auto& d = r.dirmoe;
  need(d.selection == "hard" || d.selection == "topk" || d.selection == "soft",
       fmt::format("router.dirmoe.selection \"{}\" must be \"hard\", \"topk\" or \"soft\"", d.selection));
  need(d.tau_start > 0 && d.tau_min > 0 && d.tau_min <= d.tau_start && d.tau_decay > 0 && d.tau_decay <= 1,
       "router.dirmoe: need 0 < tau_min <= tau_start and 0 < tau_decay <= 1");
  need(d.lambda_q > 0 && d.lambda_p_start > 0 && d.lambda_p_end > 0 && d.lambda_p_steps >= 0,
       "router.dirmoe: lambda_q, lambda_p_start, lambda_p_end must be > 0 and lambda_p_steps >= 0");
  need(d.a_hi > 0 && d.a_lo_start > 0 && d.a_lo_end > 0 && d.a_lo_start < d.a_hi && d.a_lo_end <= d.a_lo_start,
       "router.dirmoe: need 0 < a_lo_end <= a_lo_start < a_hi");
  need(d.a_lo_gamma > 0 && d.a_lo_gamma <= 1 && d.a_lo_eta > 0,
       "router.dirmoe: a_lo_gamma must be in (0, 1] and a_lo_eta > 0");
  need(d.prior_pi >= 0 && d.prior_pi < 1, "router.dirmoe.prior_pi must be in [0, 1) (0 = k/E)");
  need(d.beta_theta >= 0 && d.lambda_sparsity >= 0 && d.beta_z >= 0 && d.recon_variance >= 0,
       "router.dirmoe: beta_theta, lambda_sparsity, beta_z must be >= 0 and recon_variance >= 0 (0: d_model)");
  need(d.alpha_hidden > 0 && d.alpha_eps > 0, "router.dirmoe.alpha_hidden and alpha_eps must be positive");
  need(d.theta_mix >= 0 && d.theta_mix < 1, "router.dirmoe.theta_mix must be in [0, 1) (0 disables the floor)");
  need(d.weights == "all" || d.weights == "dispatched",
       fmt::format("router.dirmoe.weights \"{}\" must be \"all\" or \"dispatched\"", d.weights));
  need(d.alpha_mlp_precision == "auto" || d.alpha_mlp_precision == "fp32" || d.alpha_mlp_precision == "bf16",
       fmt::format("router.dirmoe.alpha_mlp_precision \"{}\" must be \"auto\", \"fp32\" or \"bf16\"",
                   d.alpha_mlp_precision));
  need(d.alpha_mlp_precision != "bf16" || d.weights == "all",
       "router.dirmoe.alpha_mlp_precision = \"bf16\" needs router.dirmoe.weights = \"all\" (the routing chain "
       "node runs the α MLP); use \"auto\" or \"fp32\" with weights = \"dispatched\"");
  need(d.gate_bias_init == "tau_logit" || d.gate_bias_init == "logit",
       fmt::format("router.dirmoe.gate_bias_init \"{}\" must be \"tau_logit\" or \"logit\"", d.gate_bias_init));
  need(d.sparsity_penalty == "token" || d.sparsity_penalty == "batch" || d.sparsity_penalty == "expected",
       fmt::format("router.dirmoe.sparsity_penalty \"{}\" must be \"token\", \"batch\" or \"expected\"",
                   d.sparsity_penalty));
  need(d.sparsity_control == 0 || d.sparsity_control > 1,
       "router.dirmoe.sparsity_control must be 0 (fixed lambda_sparsity) or a factor > 1");
  need(d.sparsity_control == 0 || d.lambda_sparsity > 0,
       "router.dirmoe.sparsity_control needs router.dirmoe.lambda_sparsity > 0 as its starting value");
  need(d.usage_kl >= 0 && d.balance_coef >= 0, "router.dirmoe.usage_kl and balance_coef must be >= 0");
  need(d.aux_scale_end >= 0 && d.aux_scale_end <= 1 && d.aux_scale_half_life > 0,
       "router.dirmoe.aux_scale_end must be in [0, 1] (1: constant coefficients) and aux_scale_half_life > 0");

  const auto& t = train;
  need(t.device == "auto" || t.device == "cpu" || t.device.rfind("cuda", 0) == 0,
       fmt::format("train.device \"{}\" must be auto, cpu, cuda or cuda:N", t.device));
  need(t.precision == "auto" || t.precision == "fp32" || t.precision == "bf16",
       fmt::format("train.precision \"{}\" must be auto, fp32 or bf16", t.precision));
  need(t.threads >= 0, "train.threads must be >= 0 (0 = all cores)");
  need(t.batch_size > 0 && t.grad_accum > 0 && t.max_steps > 0,
       "train.batch_size, train.grad_accum and train.max_steps must be positive");
  need(t.lr > 0 && t.lr_min >= 0 && t.lr_min <= t.lr, "train: need lr > 0 and 0 <= lr_min <= lr");
  need(t.warmup_frac >= 0 && t.warmup_frac < 1, "train.warmup_frac must be in [0, 1)");
  need(t.weight_decay >= 0 && t.grad_clip >= 0 && t.adam_eps > 0, "train: weight_decay, grad_clip >= 0, adam_eps > 0");
  need(t.adam_beta1 >= 0 && t.adam_beta1 < 1 && t.adam_beta2 >= 0 && t.adam_beta2 < 1,
       "train.adam_beta1 and adam_beta2 must be in [0, 1)");
  need(t.log_every > 0 && t.eval_every >= 0 && t.eval_batches > 0 && t.ckpt_every >= 0 && t.keep_last >= 1 &&
           t.stats_every >= 0,
       "train: log_every, eval_batches, keep_last must be positive; eval_every, ckpt_every, stats_every >= 0");
  need(t.parity_tolerance > 0, "train.parity_tolerance must be > 0");
  need(t.grad_norm_terms_every >= 0, "train.grad_norm_terms_every must be >= 0 (0 disables)");
  need(t.collective_timeout_s > 0, "train.collective_timeout_s must be > 0 (seconds)");
  for (const auto& [domain, weight] : data.domain_weights) {
    need(weight >= 0, fmt::format("data.domain_weights.{} must be >= 0", domain));
  }
  need(eval.batch_size > 0 && eval.max_examples >= 0 && eval.heldout_examples > 0 && eval.validation_tokens >= 0,
       "eval.batch_size and eval.heldout_examples must be positive, eval.max_examples and "
       "eval.validation_tokens >= 0");
}

}  // namespace dirmoe
