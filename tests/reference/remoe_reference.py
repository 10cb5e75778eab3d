"""ReMoE router (ReLU routing + load-balanced L1 regulariser), from DESIGN.md "Routers".

Inputs: x (T, D), w (E, D), k, lam, c (T, E), m_l1. Outputs: mask, weights, remoe_l1,
sparsity and the gradients of S = Σ c·weights + m_l1·remoe_l1 with respect to x and w."""
from exchange import load_inputs, save_outputs
import torch

inp = load_inputs()
x = inp["x"].clone().requires_grad_(True)
w = inp["w"].clone().requires_grad_(True)
k = int(inp["k"])
lam = float(inp["lam"])
E = w.shape[0]
T = x.shape[0]

R = torch.clamp(x @ w.T, min=0)
mask = R > 0
reg = 0.0
for e in range(E):
    reg = reg + R[:, e].sum() * float(mask[:, e].sum())
l1 = lam * E / (T * T * k) * reg

S = (inp["c"] * R).sum() + float(inp["m_l1"]) * l1
S.backward()
sparsity = 1.0 - mask.double().mean()
save_outputs({"mask": mask, "weights": R, "remoe_l1": l1, "sparsity": sparsity,
              "grad_x": x.grad, "grad_w": w.grad})
