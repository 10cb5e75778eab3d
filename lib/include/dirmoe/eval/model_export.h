#pragma once
// Exports a trained decoder for other tools (docs/export.md describes every layout):
//   "mixtral": top-k softmax router with renormalisation (or k = E): Hugging Face
//              MixtralForCausalLM names and shapes, config.json with model_type "mixtral".
//   "llama":   one expert with the top-k router (a dense FFN): LlamaForCausalLM.
//   "dirmoe":  every other router (DirMoE, ReMoE, SparseMixer, top-k without renormalisation):
//              our own parameter and buffer names, unchanged, with the full config; see docs.
// Files: model.safetensors, config.json, and the tokenizer model copied beside them.
#include <filesystem>
#include <map>
#include <string>

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

/// config.json for `layout` (Hugging Face fields for mixtral/llama; always "dirmoe_config").
nlohmann::json export_config_json(const Config& config, const std::string& layout);

struct ExportSummary {
  std::string layout;
  int64_t n_tensors = 0;
  int64_t n_parameters = 0;
};

/// Writes model.safetensors + config.json (+ a copy of `tokenizer_model` if not empty) to `out_dir`.
ExportSummary export_model(const torch::nn::Module& model, const Config& config, const std::filesystem::path& out_dir,
                           const std::filesystem::path& tokenizer_model = {});

}  // namespace dirmoe::eval
