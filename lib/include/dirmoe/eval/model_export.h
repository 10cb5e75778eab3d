#pragma once
// Exports a trained decoder for other tools (docs/export.md describes every layout):
//   "mixtral": top-k softmax router with renormalisation (or k = E): Hugging Face
//              MixtralForCausalLM names and shapes, config.json with model_type "mixtral".
//   "llama":   one expert with the top-k router (a dense FFN): LlamaForCausalLM.
//   "dirmoe":  every other router (DirMoE, ReMoE, SparseMixer, top-k without renormalisation or
//              with a capacity factor): our own parameter and buffer names, unchanged, with the
//              full config and the transformers remote code that computes the same function
//              (configuration_dirmoe.py, modeling_dirmoe.py; `auto_map` in config.json).
// Files: model.safetensors, config.json, the tokenizer model copied beside them and its
// tokenizer.json + tokenizer_config.json for AutoTokenizer (hf_tokenizer.h).
#include <filesystem>
#include <map>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>
#include <torch/nn/module.h>

#include "dirmoe/config/config.h"
#include "dirmoe/eval/safetensors.h"

namespace dirmoe::eval {

/// "mixtral", "llama" or "dirmoe" for this config (see above).
std::string export_layout(const Config& config);

/// Renames (and transposes where the layouts differ) the decoder's named tensors for `layout`.
/// Throws Error naming a parameter the layout expects but the decoder lacks.
NamedTensors export_tensors(const std::map<std::string, torch::Tensor>& named, const Config& config,
                            const std::string& layout);

/// The constants of the router's eval-time rule that the remote code needs (config.json
/// "router_eval"): topk {renormalize}, sparsemixer {jitter_eps}, remoe {}, dirmoe {selection, tau,
/// a_lo, alpha_eps, lambda_q, theta_mix, alpha_hidden} with τ_z and a_lo read from the model's
/// DirMoE router module (the schedule values it computes with now).
nlohmann::json router_eval_json(const torch::nn::Module& model, const Config& config);

/// config.json for `layout`: Hugging Face fields (Mixtral/Llama names; for the dirmoe layout also
/// auto_map, router_type and `router_eval`), always "dirmoe_config" and the git revision.
nlohmann::json export_config_json(const Config& config, const std::string& layout,
                                  const nlohmann::json& router_eval = nlohmann::json::object());

struct ExportSummary {
  std::string layout;
  int64_t n_tensors = 0;
  int64_t n_parameters = 0;
  std::vector<std::string> warnings;  // what was left out and why (e.g. a tokenizer.json the model cannot express)
};

/// Writes model.safetensors + config.json (+ the remote code for the dirmoe layout; + a copy of
/// `tokenizer_model` and its tokenizer.json/tokenizer_config.json if not empty) to `out_dir`.
ExportSummary export_model(const torch::nn::Module& model, const Config& config, const std::filesystem::path& out_dir,
                           const std::filesystem::path& tokenizer_model = {});

}  // namespace dirmoe::eval
