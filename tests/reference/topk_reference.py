"""Softmax top-k (Switch for k = 1) router, written from DESIGN.md "Routers".

Inputs: x (T, D), w (E, D), k, renormalize, balance_coef, z_loss_coef, jitter, training,
jitter_u (T, D) when jitter is on in training, c (T, E) and the loss multipliers m_balance, m_z.
Outputs: mask, weights, topk_balance, topk_z and the gradients of
S = Σ c·weights + m_balance·topk_balance + m_z·topk_z with respect to x and w."""
from exchange import load_inputs, save_outputs
import torch

inp = load_inputs()
x = inp["x"].clone().requires_grad_(True)
w = inp["w"].clone().requires_grad_(True)
k = int(inp["k"])
E = w.shape[0]
T = x.shape[0]
eps = float(inp["jitter"])

h = x
if bool(inp["training"]) and eps > 0:
    h = x * (1 - eps + 2 * eps * inp["jitter_u"])
logits = h @ w.T
p = torch.softmax(logits, dim=-1)
vals, idx = torch.topk(p, k, dim=-1)
if bool(inp["renormalize"]):
    vals = vals / vals.sum(-1, keepdim=True)

weights = torch.zeros(T, E, dtype=x.dtype)
mask = torch.zeros(T, E, dtype=torch.bool)
for t in range(T):
    for j in range(k):
        weights[t, idx[t, j]] = vals[t, j]
        mask[t, idx[t, j]] = True

f = mask.to(x.dtype).sum(0) / (T * k)
P = p.mean(0)
balance = float(inp["balance_coef"]) * E * (f * P).sum()
lse = torch.log(torch.exp(logits).sum(-1))
z = float(inp["z_loss_coef"]) * (lse ** 2).mean()

S = (inp["c"] * weights).sum() + float(inp["m_balance"]) * balance + float(inp["m_z"]) * z
S.backward()
save_outputs({"mask": mask, "weights": weights, "topk_balance": balance, "topk_z": z,
              "grad_x": x.grad, "grad_w": w.grad})
