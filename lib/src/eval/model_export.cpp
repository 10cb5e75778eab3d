#include "dirmoe/eval/model_export.h"

#include <torch/torch.h>

#include "dirmoe/core/atomic_file.h"
#include "dirmoe/core/build_info.h"
#include "dirmoe/core/error.h"
#include "dirmoe/data/tokenizer.h"
#include "dirmoe/eval/hf_remote_code.h"
#include "dirmoe/eval/hf_tokenizer.h"
#include "dirmoe/router/dirmoe_router.h"

namespace dirmoe::eval {
namespace {

const torch::Tensor& get(const std::map<std::string, torch::Tensor>& named, const std::string& name,
                         const std::string& layout) {
  auto it = named.find(name);
  if (it == named.end()) {
    throw Error("export (" + layout + " layout): the model has no parameter \"" + name +
                "\"; the decoder's parameter names changed, update model_export.cpp");
  }
  return it->second;
}

}  // namespace

std::string export_layout(const Config& config) {
  const auto& m = config.model;
  if (config.router.type != "topk") return "dirmoe";
  // Mixtral and Llama have no expert capacity: a model that drops tokens computes another function.
  if (m.capacity_factor > 0.0) return "dirmoe";
  if (m.n_experts == 1) return "llama";
  // Mixtral: softmax over all experts, top-k, renormalised to sum to 1.
  if (config.router.topk.renormalize || m.n_experts_active == m.n_experts) return "mixtral";
  return "dirmoe";
}

NamedTensors export_tensors(const std::map<std::string, torch::Tensor>& named, const Config& config,
                            const std::string& layout) {
  NamedTensors out;
  if (layout == "dirmoe") {
    for (const auto& [name, t] : named) out.emplace_back(name, t.detach());
    return out;
  }
  const auto& m = config.model;
  auto g = [&](const std::string& name) { return get(named, name, layout).detach(); };
  out.emplace_back("model.embed_tokens.weight", g("tok_embedding"));
  for (int64_t i = 0; i < m.n_layers; ++i) {
    const std::string ours = "layers." + std::to_string(i) + ".";
    const std::string hf = "model.layers." + std::to_string(i) + ".";
    out.emplace_back(hf + "input_layernorm.weight", g(ours + "attn_norm.weight"));
    out.emplace_back(hf + "self_attn.q_proj.weight", g(ours + "attention.wq"));
    out.emplace_back(hf + "self_attn.k_proj.weight", g(ours + "attention.wk"));
    out.emplace_back(hf + "self_attn.v_proj.weight", g(ours + "attention.wv"));
    out.emplace_back(hf + "self_attn.o_proj.weight", g(ours + "attention.wo"));
    out.emplace_back(hf + "post_attention_layernorm.weight", g(ours + "ffn_norm.weight"));
    // ours: x @ w_gate[e] with w_gate (E, D, F); HF Linear weights are (out, in)
    const torch::Tensor gate_EDF = g(ours + "moe.experts.w_gate");
    const torch::Tensor up_EDF = g(ours + "moe.experts.w_up");
    const torch::Tensor down_EFD = g(ours + "moe.experts.w_down");
    if (layout == "llama") {
      out.emplace_back(hf + "mlp.gate_proj.weight", gate_EDF[0].t().contiguous());
      out.emplace_back(hf + "mlp.up_proj.weight", up_EDF[0].t().contiguous());
      out.emplace_back(hf + "mlp.down_proj.weight", down_EFD[0].t().contiguous());
      continue;
    }
    out.emplace_back(hf + "block_sparse_moe.gate.weight", g(ours + "moe.router.weight"));
    for (int64_t e = 0; e < m.n_experts; ++e) {
      const std::string ex = hf + "block_sparse_moe.experts." + std::to_string(e) + ".";
      out.emplace_back(ex + "w1.weight", gate_EDF[e].t().contiguous());
      out.emplace_back(ex + "w2.weight", down_EFD[e].t().contiguous());
      out.emplace_back(ex + "w3.weight", up_EDF[e].t().contiguous());
    }
  }
  out.emplace_back("model.norm.weight", g("final_norm.weight"));
  out.emplace_back("lm_head.weight", g("head"));
  return out;
}

nlohmann::json router_eval_json(const torch::nn::Module& model, const Config& config) {
  const auto& r = config.router;
  if (r.type == "topk") return {{"renormalize", r.topk.renormalize}};
  if (r.type == "sparsemixer") return {{"jitter_eps", r.sparsemixer.jitter_eps}};
  if (r.type == "dirmoe") {
    // The schedule values in force are the router module's own (they follow set_step()), so the
    // export computes what this model computes now, at whatever step it was put.
    const DirmoeRouterImpl* router = nullptr;
    for (const auto& m : model.modules(/*include_self=*/false)) {
      if ((router = dynamic_cast<const DirmoeRouterImpl*>(m.get())) != nullptr) break;
    }
    if (router == nullptr) throw Error("export: router.type is \"dirmoe\" but the model has no DirMoE router module");
    return {{"selection", r.dirmoe.selection},     {"tau", router->schedule().tau},
            {"a_lo", router->schedule().a_lo},     {"alpha_eps", r.dirmoe.alpha_eps},
            {"lambda_q", r.dirmoe.lambda_q},       {"theta_mix", r.dirmoe.theta_mix},
            {"alpha_hidden", r.dirmoe.alpha_hidden}, {"weights", r.dirmoe.weights},
            {"center_logits", r.dirmoe.center_logits}};
  }
  return nlohmann::json::object();  // remoe: ReLU routing has no eval-time constant
}

nlohmann::json export_config_json(const Config& config, const std::string& layout, const nlohmann::json& router_eval) {
  const auto& m = config.model;
  nlohmann::json j;
  j["architectures"] = {layout == "mixtral" ? "MixtralForCausalLM"
                                            : layout == "llama" ? "LlamaForCausalLM" : "DirmoeForCausalLM"};
  j["model_type"] = layout;
  j["vocab_size"] = m.vocab_size;
  j["hidden_size"] = m.d_model;
  j["intermediate_size"] = m.d_ff;
  j["num_hidden_layers"] = m.n_layers;
  j["num_attention_heads"] = m.n_heads;
  j["num_key_value_heads"] = m.n_kv_heads;
  j["head_dim"] = m.d_model / m.n_heads;
  j["max_position_embeddings"] = m.seq_len;
  j["rms_norm_eps"] = m.norm_eps;
  j["rope_theta"] = m.rope_theta;
  j["tie_word_embeddings"] = false;
  j["initializer_range"] = m.init_std;
  j["torch_dtype"] = "float32";
  if (layout == "mixtral" || layout == "llama") {
    j["hidden_act"] = "silu";
    j["attention_bias"] = false;
    j["attention_dropout"] = 0.0;
  }
  if (layout == "mixtral") {
    j["num_local_experts"] = m.n_experts;
    j["num_experts_per_tok"] = m.n_experts_active;
    j["router_aux_loss_coef"] = config.router.topk.balance_coef;
    j["output_router_logits"] = false;
    j["sliding_window"] = nullptr;
  } else if (layout == "llama") {
    j["mlp_bias"] = false;
  } else {
    // transformers' remote code written beside (configuration_dirmoe.py, modeling_dirmoe.py)
    j["auto_map"] = {{"AutoConfig", "configuration_dirmoe.DirmoeConfig"},
                     {"AutoModelForCausalLM", "modeling_dirmoe.DirmoeForCausalLM"}};
    j["num_local_experts"] = m.n_experts;
    j["num_experts_per_tok"] = m.n_experts_active;
    j["capacity_factor"] = m.capacity_factor;
    j["router_type"] = config.router.type;
    j["router_eval"] = router_eval;
  }
  j["dirmoe_layout"] = layout;
  j["dirmoe_git_revision"] = git_revision();
  j["dirmoe_config"] = config_to_json(config);
  return j;
}

ExportSummary export_model(const torch::nn::Module& model, const Config& config, const std::filesystem::path& out_dir,
                           const std::filesystem::path& tokenizer_model) {
  ensure_directory(out_dir);
  std::map<std::string, torch::Tensor> named;
  for (const auto& item : model.named_parameters(/*recurse=*/true)) named[item.key()] = item.value();
  const std::string layout = export_layout(config);
  if (layout == "dirmoe") {
    for (const auto& item : model.named_buffers(/*recurse=*/true)) named[item.key()] = item.value();
  }
  const NamedTensors tensors = export_tensors(named, config, layout);
  ExportSummary summary;
  summary.layout = layout;
  summary.n_tensors = static_cast<int64_t>(tensors.size());
  for (const auto& [name, t] : tensors) summary.n_parameters += t.numel();
  write_safetensors(out_dir / "model.safetensors", tensors,
                    {{"format", "pt"}, {"dirmoe_layout", layout}, {"dirmoe_git_revision", git_revision()}});
  write_file_atomic(out_dir / "config.json",
                    export_config_json(config, layout, router_eval_json(model, config)).dump(2) + "\n");
  if (layout == "dirmoe") {
    for (const auto& [name, text] : hf_remote_code_files()) write_file_atomic(out_dir / name, text);
  }
  if (!tokenizer_model.empty()) {
    write_file_atomic(out_dir / "tokenizer.model", read_file(tokenizer_model));
    const data::Tokenizer tokenizer(tokenizer_model.string());
    try {
      write_file_atomic(out_dir / "tokenizer.json", hf_tokenizer_json(tokenizer).dump() + "\n");
      write_file_atomic(out_dir / "tokenizer_config.json",
                        hf_tokenizer_config_json(tokenizer, config.model.seq_len).dump(2) + "\n");
    } catch (const Error& e) {
      summary.warnings.push_back(std::string("tokenizer.json not written: ") + e.what());
    }
  }
  return summary;
}

}  // namespace dirmoe::eval
