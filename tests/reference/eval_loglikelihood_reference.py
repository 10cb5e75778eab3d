"""Independent log-likelihood scoring of an exported checkpoint (dirmoe-eval export).

Reads model.safetensors + config.json in the Hugging Face Mixtral or Llama layout with the
`safetensors` package, runs the decoder from its formulas in float64 (RMSNorm, rotate-half RoPE,
grouped-query causal attention, softmax top-k renormalised MoE of SwiGLU experts / dense SwiGLU)
one sequence at a time, and scores requests as lm-eval-harness does:
input = (context + continuation)[-(L+1):][:-1]; the last len(continuation) positions predict
the continuation; ll = sum of log-probabilities; greedy = every token is the argmax.

Inputs: export_dir (uint8 bytes of the path), tokens (N, T) int64 (context then continuation,
right-padded), ctx_len (N), cont_len (N), max_length (scalar).
Outputs: ll (N) float64, greedy (N) bool."""
import json
import math
import os

import torch
from safetensors.torch import load_file

from exchange import load_inputs, save_outputs


def rms_norm(x, w, eps):
    return x / torch.sqrt((x * x).mean(-1, keepdim=True) + eps) * w


def rope(x_HTd, theta):
    d = x_HTd.shape[-1]
    T = x_HTd.shape[-2]
    inv_freq = theta ** (-torch.arange(0, d // 2, dtype=torch.float64) * 2.0 / d)
    ang = torch.outer(torch.arange(T, dtype=torch.float64), inv_freq)
    ang = torch.cat([ang, ang], -1)
    x1, x2 = x_HTd[..., : d // 2], x_HTd[..., d // 2:]
    rotated = torch.cat([-x2, x1], -1)
    return x_HTd * ang.cos() + rotated * ang.sin()


def forward(w, cfg, tokens_T):
    D = cfg["hidden_size"]
    H = cfg["num_attention_heads"]
    G = cfg["num_key_value_heads"]
    dh = cfg.get("head_dim", D // H)
    eps = cfg["rms_norm_eps"]
    theta = cfg["rope_theta"]
    T = tokens_T.shape[0]
    h = w["model.embed_tokens.weight"][tokens_T]
    mask = torch.full((T, T), float("-inf"), dtype=torch.float64).triu(1)
    for i in range(cfg["num_hidden_layers"]):
        p = f"model.layers.{i}."
        x = rms_norm(h, w[p + "input_layernorm.weight"], eps)
        q = (x @ w[p + "self_attn.q_proj.weight"].T).view(T, H, dh).transpose(0, 1)
        k = (x @ w[p + "self_attn.k_proj.weight"].T).view(T, G, dh).transpose(0, 1)
        v = (x @ w[p + "self_attn.v_proj.weight"].T).view(T, G, dh).transpose(0, 1)
        q, k = rope(q, theta), rope(k, theta)
        k = k.repeat_interleave(H // G, 0)
        v = v.repeat_interleave(H // G, 0)
        att = torch.softmax(q @ k.transpose(1, 2) / math.sqrt(dh) + mask, -1)
        o = (att @ v).transpose(0, 1).reshape(T, H * dh)
        h = h + o @ w[p + "self_attn.o_proj.weight"].T
        x = rms_norm(h, w[p + "post_attention_layernorm.weight"], eps)
        if cfg["model_type"] == "llama":
            gate = x @ w[p + "mlp.gate_proj.weight"].T
            up = x @ w[p + "mlp.up_proj.weight"].T
            y = (torch.nn.functional.silu(gate) * up) @ w[p + "mlp.down_proj.weight"].T
        else:
            E = cfg["num_local_experts"]
            K = cfg["num_experts_per_tok"]
            probs = torch.softmax(x @ w[p + "block_sparse_moe.gate.weight"].T, -1)
            top_p, top_i = probs.topk(K, -1)
            top_p = top_p / top_p.sum(-1, keepdim=True)
            y = torch.zeros_like(x)
            for e in range(E):
                ex = p + f"block_sparse_moe.experts.{e}."
                out = (torch.nn.functional.silu(x @ w[ex + "w1.weight"].T) * (x @ w[ex + "w3.weight"].T)) @ w[ex + "w2.weight"].T
                weight = (top_p * (top_i == e)).sum(-1, keepdim=True)
                y = y + weight * out
        h = h + y
    h = rms_norm(h, w["model.norm.weight"], eps)
    return h @ w["lm_head.weight"].T


def main():
    inputs = load_inputs()
    export_dir = bytes(inputs["export_dir"].tolist()).decode()
    cfg = json.load(open(os.path.join(export_dir, "config.json")))
    w = {k: v.to(torch.float64) for k, v in load_file(os.path.join(export_dir, "model.safetensors")).items()}
    L = int(inputs["max_length"])
    lls, greedy = [], []
    for row, n_ctx, n_cont in zip(inputs["tokens"], inputs["ctx_len"], inputs["cont_len"]):
        n_ctx, n_cont = int(n_ctx), int(n_cont)
        all_tokens = row[: n_ctx + n_cont]
        inp = all_tokens[-(L + 1):][:-1]
        cont = all_tokens[n_ctx:]
        logp = torch.log_softmax(forward(w, cfg, inp), -1)[len(inp) - n_cont:]
        lls.append(logp.gather(1, cont.unsqueeze(1)).sum().item())
        greedy.append(bool((logp.argmax(-1) == cont).all()))
    save_outputs({"ll": torch.tensor(lls, dtype=torch.float64), "greedy": torch.tensor(greedy)})


main()
