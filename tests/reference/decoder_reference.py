"""Independent reference of the MoE decoder (DESIGN.md "Model"), written from the formulas.

Inputs: the named parameters of the C++ Decoder, `tokens` (B, T), `targets` (B, T) and the
configuration as 0-dim tensors. Computes logits, the mean cross-entropy, the aux loss averaged over
layers, and the gradients of loss = CE + aux with respect to every parameter ("grad.<name>").

Model, per layer l (pre-norm):
  rms(x) = x / sqrt(mean(x²) + eps) · g
  attention: q = h Wqᵀ, k = h Wkᵀ, v = h Wvᵀ; RoPE (rotate-half) on q, k with angle t·θ^(−2i/d);
             scores = q kᵀ/√d with a causal mask, query head j reads kv head j // (H/G);
             out = concat(softmax(scores) v) Woᵀ
  router:    p = softmax(h Wgᵀ); the k largest p dispatched with weight p; aux = c·mean_t Σ_e p²
  MoE:       y_t = Σ_e w_te (silu(h_t Wg_e) ⊙ (h_t Wu_e)) Wd_e   (every expert on every token,
             weighted by w, which is 0 off the mask: no dispatch at all)
Everything in float64, with explicit softmax and masks (no scaled_dot_product_attention)."""
import math

import torch

from exchange import load_inputs, save_outputs

inp = load_inputs()
params = {name[len("param."):]: t.clone().requires_grad_(True) for name, t in inp.items() if name.startswith("param.")}
tokens = inp["tokens"]
targets = inp["targets"]
cfg = {name: inp[name].item() for name in
       ("d_model", "n_layers", "n_heads", "n_kv_heads", "n_experts", "k", "rope_theta", "norm_eps", "aux_coef")}
D, L, H, G, E, K = (int(cfg[n]) for n in ("d_model", "n_layers", "n_heads", "n_kv_heads", "n_experts", "k"))
dh = D // H
B, T = tokens.shape


def rms(x, g):
    return x / torch.sqrt((x * x).mean(-1, keepdim=True) + cfg["norm_eps"]) * g


def rope(x):  # x: (B, heads, T, dh)
    half = dh // 2
    freqs = torch.tensor([cfg["rope_theta"] ** (-2.0 * i / dh) for i in range(half)], dtype=torch.float64)
    ang = torch.arange(T, dtype=torch.float64)[:, None] * freqs[None, :]  # (T, half)
    c, s = torch.cos(ang), torch.sin(ang)
    x1, x2 = x[..., :half], x[..., half:]
    return torch.cat([x1 * c - x2 * s, x2 * c + x1 * s], dim=-1)


def attention(h, p):
    q = (h @ p["wq"].T).view(B, T, H, dh).transpose(1, 2)
    k = (h @ p["wk"].T).view(B, T, G, dh).transpose(1, 2)
    v = (h @ p["wv"].T).view(B, T, G, dh).transpose(1, 2)
    q, k = rope(q), rope(k)
    group = H // G
    k = torch.stack([k[:, j // group] for j in range(H)], dim=1)
    v = torch.stack([v[:, j // group] for j in range(H)], dim=1)
    scores = q @ k.transpose(-1, -2) / math.sqrt(dh)
    future = torch.triu(torch.ones(T, T, dtype=torch.bool), diagonal=1)
    scores = scores.masked_fill(future, float("-inf"))
    o = torch.softmax(scores, dim=-1) @ v  # (B, H, T, dh)
    return o.transpose(1, 2).reshape(B, T, H * dh) @ p["wo"].T


def moe(h, p):
    x = h.reshape(B * T, D)
    probs = torch.softmax(x @ p["router.gate"].T, dim=-1)
    top = probs.topk(K, dim=-1).indices
    mask = torch.zeros_like(probs).scatter(1, top, 1.0)
    w = probs * mask
    y = torch.zeros_like(x)
    for e in range(E):
        a = x @ p["experts.w_gate"][e]
        b = x @ p["experts.w_up"][e]
        y = y + w[:, e:e + 1] * ((a * torch.sigmoid(a) * b) @ p["experts.w_down"][e])
    aux = cfg["aux_coef"] * (probs ** 2).sum(-1).mean()
    return y.view(B, T, D), aux


x = params["tok_embedding"][tokens]
aux_total = 0.0
for layer in range(L):
    prefix = f"layers.{layer}."
    p = {name[len(prefix):]: t for name, t in params.items() if name.startswith(prefix)}
    x = x + attention(rms(x, p["attn_norm.weight"]), {n[len("attention."):]: t for n, t in p.items() if n.startswith("attention.")})
    y, aux = moe(rms(x, p["ffn_norm.weight"]), {n[len("moe."):]: t for n, t in p.items() if n.startswith("moe.")})
    x = x + y
    aux_total = aux_total + aux
aux_mean = aux_total / L
logits = rms(x, params["final_norm.weight"]) @ params["head"].T
log_probs = torch.log_softmax(logits, dim=-1)
ce = -log_probs.gather(-1, targets[..., None]).mean()
loss = ce + aux_mean
loss.backward()

outputs = {"logits": logits, "ce": ce, "aux": aux_mean}
outputs.update({"grad." + name: t.grad for name, t in params.items()})
save_outputs(outputs)
