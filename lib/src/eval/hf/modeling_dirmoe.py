# A dirmoe decoder for transformers (AutoModelForCausalLM with trust_remote_code=True), written
# by `dirmoe-eval export` beside model.safetensors and config.json (docs/export.md).
#
# Plain PyTorch, written from dirmoe's DESIGN ("Model", "Routers") and its C++ eval path:
#   token embedding → L × [RMSNorm → GQA attention (rotate-half RoPE, causal SDPA) → residual →
#   RMSNorm → MoE (route → dispatch → SwiGLU experts → combine) → residual] → RMSNorm → head.
# Every router runs its EVAL-TIME rule only (no noise, no auxiliary losses): this is inference
# code. Parameter names are dirmoe's own (`tok_embedding`, `layers.{i}.attention.wq`, ...,
# `layers.{i}.moe.router.*`), so the exported safetensors load without renaming.
#
# Each step mirrors the C++ operation by operation (same ops, same order, float32), so the
# logits agree with dirmoe-eval's to float rounding; tests/cli/test_export_hf.sh checks each
# router to 1e-4.
import math

import torch
import torch.nn.functional as F
from torch import nn
from transformers import GenerationMixin, PreTrainedModel
from transformers.modeling_outputs import CausalLMOutputWithPast

from .configuration_dirmoe import DirmoeConfig


# ---- decoder pieces (lib/src/model/*.cpp) ---------------------------------------------------


class DirmoeRMSNorm(nn.Module):
    """RMSNorm (Zhang & Sennrich 2019, eq. 4): y = x / sqrt(mean_d(x_d²) + eps) ⊙ g."""

    def __init__(self, dim, eps):
        super().__init__()
        self.weight = nn.Parameter(torch.ones(dim))  # (D)
        self.eps = eps

    def forward(self, x):
        low = x.dtype in (torch.bfloat16, torch.float16)
        xf = x.float() if low else x
        normed = xf * torch.rsqrt(xf.pow(2).mean(-1, keepdim=True) + self.eps)
        return normed.to(x.dtype) * self.weight.to(x.dtype)


def rotary_tables(seq_len, d_head, theta, dtype, device):
    """cos, sin (T, d_head) of RoPE's rotate-half layout, angles t·θ^(−2i/d) in float64."""
    i_h = torch.arange(d_head // 2, dtype=torch.float64, device=device)
    inv_freq_h = torch.pow(torch.tensor(theta, dtype=torch.float64, device=device), -2.0 * i_h / d_head)
    angle_Th = torch.outer(torch.arange(seq_len, dtype=torch.float64, device=device), inv_freq_h)
    angle_Td = torch.cat([angle_Th, angle_Th], -1)
    return angle_Td.cos().to(dtype), angle_Td.sin().to(dtype)


def apply_rotary(x_BHTd, cos_Td, sin_Td):
    half = x_BHTd.shape[-1] // 2
    x1, x2 = x_BHTd[..., :half], x_BHTd[..., half:]
    return x_BHTd * cos_Td + torch.cat([-x2, x1], -1) * sin_Td


class DirmoeAttention(nn.Module):
    """Grouped-query causal self-attention with RoPE on q and k, no biases."""

    def __init__(self, config):
        super().__init__()
        d, h, g = config.hidden_size, config.num_attention_heads, config.num_key_value_heads
        self.n_heads, self.n_kv_heads, self.d_head = h, g, d // h
        self.rope_theta = config.rope_theta
        self.wq = nn.Parameter(torch.empty(h * self.d_head, d))  # (H·dh, D)
        self.wk = nn.Parameter(torch.empty(g * self.d_head, d))  # (G·dh, D)
        self.wv = nn.Parameter(torch.empty(g * self.d_head, d))  # (G·dh, D)
        self.wo = nn.Parameter(torch.empty(d, h * self.d_head))  # (D, H·dh)

    def forward(self, x_BTD, pad_mask_BT=None):
        B, T, _ = x_BTD.shape

        def heads(w, n):  # (B, T, n·dh) → (B, n, T, dh)
            return F.linear(x_BTD, w).view(B, T, n, self.d_head).transpose(1, 2)

        q_BHTd, k_BGTd, v_BGTd = heads(self.wq, self.n_heads), heads(self.wk, self.n_kv_heads), heads(self.wv, self.n_kv_heads)
        cos_Td, sin_Td = rotary_tables(T, self.d_head, self.rope_theta, q_BHTd.dtype, q_BHTd.device)
        q_BHTd, k_BGTd = apply_rotary(q_BHTd, cos_Td, sin_Td), apply_rotary(k_BGTd, cos_Td, sin_Td)
        gqa = self.n_kv_heads != self.n_heads
        if pad_mask_BT is None:
            o_BHTd = F.scaled_dot_product_attention(q_BHTd, k_BGTd, v_BGTd, is_causal=True, enable_gqa=gqa)
        else:
            # padding keys are masked as well (generation with left padding); dirmoe itself never
            # pads on the left, so this branch has no C++ counterpart
            causal_TT = torch.ones(T, T, dtype=torch.bool, device=x_BTD.device).tril()
            allowed_B1TT = causal_TT & pad_mask_BT[:, None, None, :].bool()
            allowed_B1TT = allowed_B1TT | torch.eye(T, dtype=torch.bool, device=x_BTD.device)  # no empty rows
            o_BHTd = F.scaled_dot_product_attention(q_BHTd, k_BGTd, v_BGTd, attn_mask=allowed_B1TT, enable_gqa=gqa)
        return F.linear(o_BHTd.transpose(1, 2).reshape(B, T, self.n_heads * self.d_head), self.wo)


def swiglu(x_ND, w_gate_DF, w_up_DF, w_down_FD):
    """SwiGLU FFN (Shazeer 2020, eq. 6 without biases): (silu(x·W_gate) ⊙ x·W_up)·W_down."""
    return torch.matmul(F.silu(torch.matmul(x_ND, w_gate_DF)) * torch.matmul(x_ND, w_up_DF), w_down_FD)


class DirmoeExperts(nn.Module):
    """E SwiGLU experts stored stacked."""

    def __init__(self, n_experts, d_model, d_ff):
        super().__init__()
        self.w_gate = nn.Parameter(torch.empty(n_experts, d_model, d_ff))  # (E, D, F)
        self.w_up = nn.Parameter(torch.empty(n_experts, d_model, d_ff))  # (E, D, F)
        self.w_down = nn.Parameter(torch.empty(n_experts, d_ff, d_model))  # (E, F, D)

    def forward(self, x_ND, counts):
        """Rows of x_ND sorted by expert; counts[e] rows belong to expert e (a Python list)."""
        parts = x_ND.split(counts, 0)
        dtype = x_ND.dtype
        outputs = [swiglu(parts[e], self.w_gate[e].to(dtype), self.w_up[e].to(dtype), self.w_down[e].to(dtype))
                   for e in range(len(counts)) if counts[e] > 0]
        if not outputs:
            return x_ND.new_zeros(0, self.w_down.shape[2])
        return outputs[0] if len(outputs) == 1 else torch.cat(outputs, 0)


# ---- routers: each returns (dispatch mask_TE bool, combine weights_TE), eval-time rule only --
# (DESIGN.md "Routers"; lib/src/router/<type>_router.cpp, the `is_training() == false` branches)


class TopkRouter(nn.Module):
    """Softmax top-k (Switch = top-1): p = softmax(x·Wᵀ), keep the k largest, optionally
    renormalised to sum to 1."""

    def __init__(self, config):
        super().__init__()
        self.k = config.num_experts_per_tok
        self.renormalize = bool(config.router_eval.get("renormalize", False))
        self.weight = nn.Parameter(torch.empty(config.num_local_experts, config.hidden_size))  # (E, D)

    def forward(self, x_TD):
        logits_TE = torch.matmul(x_TD, self.weight.t())
        logits_TE = logits_TE.to(torch.promote_types(logits_TE.dtype, torch.float32))
        probs_TE = torch.softmax(logits_TE, 1)
        top_p_TK, top_i_TK = probs_TE.topk(self.k, 1)
        if self.renormalize:
            top_p_TK = top_p_TK / top_p_TK.sum(1, keepdim=True)
        weights_TE = torch.zeros_like(probs_TE).scatter(1, top_i_TK, top_p_TK)
        mask_TE = torch.zeros(probs_TE.shape, dtype=torch.bool, device=probs_TE.device).scatter(1, top_i_TK, True)
        return mask_TE, weights_TE


class RemoeRouter(nn.Module):
    """ReMoE: R = ReLU(x·Wᵀ); expert e computes token t iff R_te > 0, with weight R_te. The L1
    coefficient λ is a training-time controller, loaded only so the checkpoint is complete."""

    def __init__(self, config):
        super().__init__()
        self.weight = nn.Parameter(torch.empty(config.num_local_experts, config.hidden_size))  # (E, D)
        self.register_buffer("lambda", torch.zeros((), dtype=torch.float64))  # () λ, unused at eval

    def forward(self, x_TD):
        logits_TE = torch.matmul(x_TD, self.weight.t())
        relu_TE = torch.relu(logits_TE.to(torch.promote_types(logits_TE.dtype, torch.float32)))
        return relu_TE > 0, relu_TE


class SparseMixerRouter(nn.Module):
    """SparseMixer-v2 (GRIN) at eval: per round, among the experts not chosen yet, mask every
    expert i with (z* − z_i)/max(|z_i|, z*) > 2ε (z* the largest remaining score), take the
    argmax, weight = its masked-softmax probability; k rounds."""

    def __init__(self, config):
        super().__init__()
        self.k = config.num_experts_per_tok
        self.jitter_eps = float(config.router_eval.get("jitter_eps", 0.01))
        self.weight = nn.Parameter(torch.empty(config.num_local_experts, config.hidden_size))  # (E, D)

    def forward(self, x_TD):
        scores_TE = torch.matmul(x_TD, self.weight.t())
        scores_TE = scores_TE.to(torch.promote_types(scores_TE.dtype, torch.float32))
        inf = float("inf")
        weights_TE = torch.zeros_like(scores_TE)
        mask_TE = torch.zeros(scores_TE.shape, dtype=torch.bool, device=scores_TE.device)
        remaining_TE = scores_TE  # chosen experts set to −∞
        for _ in range(self.k):
            top_score_T1, top_T1 = remaining_TE.max(1, keepdim=True)
            factor_TE = torch.maximum(scores_TE.abs(), top_score_T1)
            excluded_TE = ((top_score_T1 - scores_TE) / factor_TE > 2.0 * self.jitter_eps) | torch.isinf(remaining_TE)
            probs_TE = torch.softmax(remaining_TE.masked_fill(excluded_TE, -inf), 1)
            weight_T1 = probs_TE.gather(1, top_T1)
            weights_TE = weights_TE.scatter(1, top_T1, weight_T1)
            mask_TE = mask_TE.scatter(1, top_T1, True)
            remaining_TE = remaining_TE.scatter(1, top_T1, -inf)
        return mask_TE, weights_TE


def dirmoe_eval_route(logits_TE, alpha_lo_raw_TE, alpha_hi_raw_TE, rule):
    """DirMoE's eval-time rule (DESIGN.md "DirMoE"; lib/src/router/dirmoe_router.cpp, eval branch).

    Inputs are the three heads' raw outputs for T tokens: gating logits ℓ (T, E) and the
    pre-softplus α_lo, α_hi heads (T, E). `rule` holds the constants of config.router_eval:
    tau (τ_z in force), a_lo (a_lo(t) in force), alpha_eps (ε), lambda_q (λ^q), theta_mix,
    selection ("hard" | "topk" | "soft"), weights ("all" | "dispatched"), k (experts per token).

      α_lo = softplus(·) + a_lo + ε,   α_hi = α_lo + softplus(·) + ε
      z̃ = σ(ℓ/τ)                                        (no Logistic noise at eval)
      hard: dispatch ℓ > 0; a token with none keeps argmax ℓ; z = the 0/1 mask
      topk: dispatch the k largest ℓ; z = the 0/1 mask
      soft: every expert dispatched; z = z̃
      α^q = λ^q·(z̃·α_hi + (1−z̃)·α_lo);   θ = E[θ] = α^q / Σα^q
      θ̃ = (1−theta_mix)·θ + theta_mix/E   (when theta_mix > 0)
      weights "all":        r = z̃ ⊙ θ̃ / Σ(z̃ ⊙ θ̃) over all E (computed as a softmax of
                            log σ(ℓ/τ) + log θ̃); a dispatched expert's weight is r_i, others 0
      weights "dispatched": r = z ⊙ θ̃ / Σ(z ⊙ θ̃), renormalised over the dispatched experts

    Returns (mask_TE bool, weights_TE). This function is the only place the DirMoE rule lives.
    """
    E = logits_TE.shape[1]
    alpha_lo_TE = F.softplus(alpha_lo_raw_TE) + (rule["a_lo"] + rule["alpha_eps"])
    alpha_hi_TE = alpha_lo_TE + F.softplus(alpha_hi_raw_TE) + rule["alpha_eps"]
    z_soft_TE = torch.sigmoid(logits_TE / rule["tau"])
    if rule["selection"] == "hard":
        selected_TE = logits_TE > 0
        empty_T = selected_TE.logical_not().all(1)
        fallback_TE = torch.zeros_like(selected_TE).scatter_(1, logits_TE.argmax(1, keepdim=True), True)
        mask_TE = selected_TE.logical_or(fallback_TE.logical_and(empty_T.unsqueeze(1)))
        z_TE = mask_TE.to(z_soft_TE.dtype)
    elif rule["selection"] == "topk":
        mask_TE = torch.zeros_like(logits_TE, dtype=torch.bool).scatter_(1, logits_TE.topk(int(rule["k"]), 1)[1], True)
        z_TE = mask_TE.to(z_soft_TE.dtype)
    else:
        mask_TE = torch.ones_like(logits_TE, dtype=torch.bool)
        z_TE = z_soft_TE
    alpha_q_TE = rule["lambda_q"] * (z_soft_TE * alpha_hi_TE + (1.0 - z_soft_TE) * alpha_lo_TE)
    theta_TE = alpha_q_TE / alpha_q_TE.sum(1, keepdim=True)
    if rule["theta_mix"] > 0:
        theta_TE = (1.0 - rule["theta_mix"]) * theta_TE + rule["theta_mix"] / E
    if rule.get("weights", "dispatched") == "all":
        r_TE = torch.softmax(F.logsigmoid(logits_TE / rule["tau"]) + torch.log(theta_TE), 1)
        return mask_TE, r_TE * mask_TE.to(r_TE.dtype)
    masked_TE = z_TE * theta_TE
    return mask_TE, masked_TE / masked_TE.sum(1, keepdim=True)


class DirmoeRouter(nn.Module):
    """DirMoE's three heads: gate ℓ = x·W_ℓ + b (D → E; with center_logits the token's mean of x·W_ℓ
    over experts is subtracted before the bias) and a SiLU MLP (D → H) feeding the α_lo and
    α_hi heads (H → E). The reconstruction decoder (E → D) is a training-time term, loaded only so
    the checkpoint is complete. The rule itself is dirmoe_eval_route above."""

    def __init__(self, config):
        super().__init__()
        d, e = config.hidden_size, config.num_local_experts
        h = int(config.router_eval["alpha_hidden"])
        self.rule = {key: config.router_eval[key]
                     for key in ("selection", "tau", "a_lo", "alpha_eps", "lambda_q", "theta_mix")}
        # exports written before these settings existed computed "dispatched" weights, uncentred
        self.rule["weights"] = config.router_eval.get("weights", "dispatched")
        self.center_logits = bool(config.router_eval.get("center_logits", False))
        self.rule["k"] = config.num_experts_per_tok
        self.gate = nn.Linear(d, e)
        self.alpha_hidden = nn.Linear(d, h)
        self.alpha_lo = nn.Linear(h, e)
        self.alpha_hi = nn.Linear(h, e)
        self.decoder = nn.Linear(e, d)  # training only

    def forward(self, x_TD):
        x = x_TD.to(self.gate.weight.dtype)

        def wide(t):  # half-precision head outputs are brought back to float32
            return t.float() if t.dtype in (torch.bfloat16, torch.float16) else t

        if self.center_logits:
            linear_TE = wide(torch.matmul(x, self.gate.weight.t()))
            logits_TE = linear_TE - linear_TE.mean(1, keepdim=True) + self.gate.bias.to(linear_TE.dtype)
        else:
            logits_TE = wide(self.gate(x))
        hidden_TH = F.silu(self.alpha_hidden(x))
        return dirmoe_eval_route(logits_TE, wide(self.alpha_lo(hidden_TH)), wide(self.alpha_hi(hidden_TH)), self.rule)


ROUTERS = {"topk": TopkRouter, "remoe": RemoeRouter, "sparsemixer": SparseMixerRouter, "dirmoe": DirmoeRouter}


class DirmoeMoeLayer(nn.Module):
    """route → dispatch (token/expert pairs sorted by expert, then token; optional capacity) →
    experts → combine (y_t = Σ weights_TE[t,e]·E_e(x_t), a weighted index_add)."""

    def __init__(self, config):
        super().__init__()
        if config.router_type not in ROUTERS:
            raise ValueError(f"router_type {config.router_type!r} is not one of {sorted(ROUTERS)}")
        self.router = ROUTERS[config.router_type](config)
        self.experts = DirmoeExperts(config.num_local_experts, config.hidden_size, config.intermediate_size)
        self.n_experts = config.num_local_experts
        self.n_active = config.num_experts_per_tok
        self.capacity_factor = config.capacity_factor

    def capacity(self, n_tokens):
        if self.capacity_factor <= 0:
            return 0
        exact = self.capacity_factor * n_tokens * self.n_active / self.n_experts
        return max(1, math.ceil(exact - 1e-9))

    def forward(self, x_TD):
        # 1. route
        mask_TE, weights_TE = self.router(x_TD)
        if self.n_experts == 1 and self.capacity_factor <= 0:
            dtype = x_TD.dtype
            y_TD = swiglu(x_TD, self.experts.w_gate.to(dtype)[0], self.experts.w_up.to(dtype)[0],
                          self.experts.w_down.to(dtype)[0])
            return (y_TD * (weights_TE * mask_TE)).to(dtype)
        # 2. dispatch
        keep_TE = mask_TE
        capacity = self.capacity(x_TD.shape[0])
        if capacity > 0:
            keep_TE = mask_TE.logical_and(mask_TE.cumsum(0) - 1 < capacity)
        pairs_N2 = torch.nonzero(keep_TE.t())
        expert_N, token_N = pairs_N2[:, 0], pairs_N2[:, 1]
        counts = keep_TE.sum(0).tolist()
        # 3. experts
        y_ND = self.experts(x_TD.index_select(0, token_N), counts)
        # 4. combine
        weight_N = weights_TE.reshape(-1).index_select(0, token_N * self.n_experts + expert_N)
        contrib_ND = (y_ND * weight_N.unsqueeze(1)).to(x_TD.dtype)
        return torch.zeros_like(x_TD).index_add(0, token_N, contrib_ND)


class DirmoeBlock(nn.Module):
    """h = x + Attention(RMSNorm(x)); y = h + MoE(RMSNorm(h))."""

    def __init__(self, config):
        super().__init__()
        self.attn_norm = DirmoeRMSNorm(config.hidden_size, config.rms_norm_eps)
        self.attention = DirmoeAttention(config)
        self.ffn_norm = DirmoeRMSNorm(config.hidden_size, config.rms_norm_eps)
        self.moe = DirmoeMoeLayer(config)

    def forward(self, x_BTD, pad_mask_BT=None):
        h_BTD = x_BTD + self.attention(self.attn_norm(x_BTD), pad_mask_BT)
        D = h_BTD.shape[-1]
        return h_BTD + self.moe(self.ffn_norm(h_BTD).reshape(-1, D)).view(h_BTD.shape)


# ---- the transformers model -------------------------------------------------------------


class DirmoePreTrainedModel(PreTrainedModel):
    config_class = DirmoeConfig
    base_model_prefix = "dirmoe"
    supports_gradient_checkpointing = False
    _no_split_modules = ["DirmoeBlock"]

    def _init_weights(self, module):
        # dirmoe initialises every matrix N(0, init_std²) (DESIGN.md "Model"); a loaded checkpoint
        # overwrites all of them.
        std = self.config.initializer_range
        if isinstance(module, nn.Linear):
            nn.init.normal_(module.weight, 0.0, std)
            nn.init.zeros_(module.bias)
        elif isinstance(module, (DirmoeAttention, DirmoeExperts, TopkRouter, RemoeRouter, SparseMixerRouter)):
            for p in module.parameters(recurse=False):
                nn.init.normal_(p, 0.0, std)
        elif isinstance(module, DirmoeRMSNorm):
            nn.init.ones_(module.weight)
        elif isinstance(module, DirmoeForCausalLM):
            nn.init.normal_(module.tok_embedding, 0.0, std)
            nn.init.normal_(module.head, 0.0, std)


class DirmoeForCausalLM(DirmoePreTrainedModel, GenerationMixin):
    """The decoder with its untied output head. forward(input_ids) → logits (B, T, V), float32.

    No key/value cache: every call runs the whole sequence (generation recomputes the prefix)."""

    def __init__(self, config):
        super().__init__(config)
        self.tok_embedding = nn.Parameter(torch.empty(config.vocab_size, config.hidden_size))  # (V, D)
        self.layers = nn.ModuleList(DirmoeBlock(config) for _ in range(config.num_hidden_layers))
        self.final_norm = DirmoeRMSNorm(config.hidden_size, config.rms_norm_eps)
        self.head = nn.Parameter(torch.empty(config.vocab_size, config.hidden_size))  # (V, D)
        self.post_init()

    def prepare_inputs_for_generation(self, input_ids, attention_mask=None, **kwargs):
        return {"input_ids": input_ids, "attention_mask": attention_mask}

    def forward(self, input_ids=None, attention_mask=None, labels=None, return_dict=None, **kwargs):
        if input_ids.shape[1] > self.config.max_position_embeddings:
            raise ValueError(f"sequence length {input_ids.shape[1]} exceeds the model's window "
                             f"max_position_embeddings={self.config.max_position_embeddings}")
        pad_mask_BT = None
        if attention_mask is not None and not bool(attention_mask.bool().all()):
            pad_mask_BT = attention_mask
        x_BTD = F.embedding(input_ids, self.tok_embedding)
        for block in self.layers:
            x_BTD = block(x_BTD, pad_mask_BT)
        logits_BTV = F.linear(self.final_norm(x_BTD), self.head)
        if logits_BTV.dtype in (torch.bfloat16, torch.float16):
            logits_BTV = logits_BTV.float()
        loss = None
        if labels is not None:
            loss = F.cross_entropy(logits_BTV[:, :-1].reshape(-1, logits_BTV.shape[-1]), labels[:, 1:].reshape(-1),
                                   ignore_index=-100)
        return CausalLMOutputWithPast(loss=loss, logits=logits_BTV)
