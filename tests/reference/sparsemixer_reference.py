"""SparseMixer-v2 router (GRIN), written from DESIGN.md "Routers" with a per-token loop.

Inputs: x (T, D), w (E, D), k, eps, balance_coef, training, u1 (T, E) and u2 (T, E) uniforms for
the Gumbel draws of rounds 1 and 2, us (T, k) uniforms for the forward scale, c (T, E), m_balance.
Outputs: mask, weights, sparsemixer_balance, choices (T, k), scales (T, k) and the gradients of
S = Σ c·weights + m_balance·sparsemixer_balance with respect to x and w, where in training the
gradient of each weight w_t = s·p[D] with respect to the scores z_t is the SparseMixer-v2
estimator  ∂z = −p·ĝ + onehot(D)·ĝ,  ĝ = (∂S/∂w_t)·p[D]  (s does not enter)."""
import math

from exchange import load_inputs, save_outputs
import torch


class ChoiceWeight(torch.autograd.Function):
    @staticmethod
    def forward(ctx, z, p, d, s):
        ctx.save_for_backward(p)
        ctx.d = d
        return p[d] * s

    @staticmethod
    def backward(ctx, grad):
        (p,) = ctx.saved_tensors
        g = grad * p[ctx.d]
        dz = -p * g
        dz[ctx.d] = dz[ctx.d] + g
        return dz, None, None, None


inp = load_inputs()
x = inp["x"].clone().requires_grad_(True)
w = inp["w"].clone().requires_grad_(True)
k = int(inp["k"])
eps = float(inp["eps"])
training = bool(inp["training"])
E = w.shape[0]
T = x.shape[0]

z_all = x @ w.T
weight_rows = []
mask = torch.zeros(T, E, dtype=torch.bool)
choices = torch.zeros(T, k, dtype=torch.long)
scales = torch.ones(T, k, dtype=x.dtype)
for t in range(T):
    z = z_all[t]
    zv = z.detach()
    row = torch.zeros(E, dtype=x.dtype)
    taken = []
    for r in range(k):
        avail = [i for i in range(E) if i not in taken]
        zstar = max(float(zv[i]) for i in avail)
        keep = [i for i in avail if (zstar - float(zv[i])) / max(abs(float(zv[i])), zstar) <= 2 * eps]
        logits = torch.stack([z[i] if i in keep else torch.tensor(-math.inf, dtype=x.dtype) for i in range(E)])
        p = torch.softmax(logits, dim=0)
        best = max(keep, key=lambda i: float(zv[i]))
        if training:
            u = (inp["u1"] if r == 0 else inp["u2"])[t]
            d = max(keep, key=lambda i: float(zv[i]) - math.log(-math.log(float(u[i]))))
            s = 1.0 if (d == best or float(inp["us"][t, r]) > 0.75) else 1.0 / 3.0
            wt = ChoiceWeight.apply(z, p.detach(), d, s)
        else:
            d = best
            s = 1.0
            wt = p[d]
        onehot = torch.zeros(E, dtype=x.dtype)
        onehot[d] = 1.0
        row = row + onehot * wt
        mask[t, d] = True
        choices[t, r] = d
        scales[t, r] = s
        taken.append(d)
    weight_rows.append(row)
weights = torch.stack(weight_rows)

f = mask.to(x.dtype).sum(0) / (T * k)
P = torch.softmax(z_all, dim=-1).mean(0)
balance = float(inp["balance_coef"]) * E * (f * P).sum()

S = (inp["c"] * weights).sum() + float(inp["m_balance"]) * balance
S.backward()
save_outputs({"mask": mask, "weights": weights, "sparsemixer_balance": balance, "choices": choices,
              "scales": scales, "grad_x": x.grad, "grad_w": w.grad})
