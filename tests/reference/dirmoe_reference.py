"""Independent reference of the DirMoE router (DESIGN.md "DirMoE"), written from the formulas.

Inputs (float64 unless noted): x (T, D); the router parameters under their module names
(gate.weight (E, D), gate.bias (E), alpha_hidden.weight (H, D), alpha_hidden.bias (H),
alpha_lo.weight (E, H), alpha_lo.bias (E), alpha_hi.weight (E, H), alpha_hi.bias (E),
decoder.weight (D, E), decoder.bias (D)); uniform (T, E) in (0, 1); probe (T, E), a cotangent
for the routing weights; 0-dim scalars tau, lambda_q, lambda_p, a_hi, a_lo, k, beta_theta,
lambda_s, beta_z, pi, sigma2, eps, theta_mix (theta <- (1-mix)*theta + mix/E
before the normalisation), hard (1: dispatch of z>0.5, 0: soft), topk (1: dispatch the k largest
logit + noise instead; overrides hard), training (1: noise and Gamma
draws, 0: eval), seed (Gamma draws), weights_all (1: r = normalize(z_soft*theta) over all E and a
dispatched expert keeps r_i; 0: straight-through z renormalised over the dispatched experts),
center (1: the gate's linear part centred per token), sparsity_batch (1: the penalty on the batch
mean of sum z_soft), sparsity_expected (1: the penalty is E[(n - k)^2] for the hard count n of
independent Bernoulli(sigmoid(logit)) selections, computed from the mean and variance), usage_kl (beta_u of the per-expert selection-rate KL), balance (Switch-style
coefficient on dispatched share times mean selection probability), alpha_bf16 (1, in training: the
alpha MLP's hidden layer from bf16 operands and a bf16 product, as autocast runs a linear layer, its
bias added in float64 after; optional, 0 when absent).

The Gamma step draws gamma ~ Gamma(alpha_q, 1) here (returned as "gamma" so that the C++ side
can reuse the same draws) and differentiates it with torch._standard_gamma_grad, the implicit
derivative -(dF/dalpha)/(dF/dx) of the Gamma CDF. That function is an approximation (relative
error up to ~4e-4), so the C++ side is compared with it exactly here; the exactness of the
implicit derivative itself is checked separately against gamma_implicit_grad_reference.py.

Outputs: mask, weights, recon, kl_dir, sparsity, kl_bern, usage_kl, balance, alpha_q, gamma, total,
and grad.<name> for x and every parameter, where total = the sum of the losses + sum(probe*weights).
"""
import torch
import torch.nn.functional as F

from exchange import load_inputs, save_outputs


class GammaWithDraws(torch.autograd.Function):
    @staticmethod
    def forward(ctx, alpha, draws):
        ctx.save_for_backward(alpha, draws)
        return draws.clone()

    @staticmethod
    def backward(ctx, grad):
        alpha, draws = ctx.saved_tensors
        return grad * torch._standard_gamma_grad(alpha, draws), None


def scalar(inputs, name):
    return float(inputs[name].item())


def main():
    inputs = load_inputs()
    names = ["gate.weight", "gate.bias", "alpha_hidden.weight", "alpha_hidden.bias", "alpha_lo.weight",
             "alpha_lo.bias", "alpha_hi.weight", "alpha_hi.bias", "decoder.weight", "decoder.bias"]
    p = {n: inputs[n].clone().requires_grad_(True) for n in names}
    x = inputs["x"].clone().requires_grad_(True)
    u = inputs["uniform"]
    probe = inputs["probe"]
    tau, lambda_q, lambda_p = scalar(inputs, "tau"), scalar(inputs, "lambda_q"), scalar(inputs, "lambda_p")
    a_hi, a_lo, k = scalar(inputs, "a_hi"), scalar(inputs, "a_lo"), scalar(inputs, "k")
    beta_theta, lambda_s, beta_z = scalar(inputs, "beta_theta"), scalar(inputs, "lambda_s"), scalar(inputs, "beta_z")
    pi, sigma2, eps = scalar(inputs, "pi"), scalar(inputs, "sigma2"), scalar(inputs, "eps")
    theta_mix = scalar(inputs, "theta_mix")
    hard, training = bool(scalar(inputs, "hard")), bool(scalar(inputs, "training"))
    topk = bool(scalar(inputs, "topk"))
    seed = int(scalar(inputs, "seed"))
    weights_all, center = bool(scalar(inputs, "weights_all")), bool(scalar(inputs, "center"))
    sparsity_batch = bool(scalar(inputs, "sparsity_batch"))
    sparsity_expected = bool(scalar(inputs, "sparsity_expected"))
    beta_u, balance_coef = scalar(inputs, "usage_kl"), scalar(inputs, "balance")
    aux_detach = bool(scalar(inputs, "aux_detach"))
    alpha_bf16 = "alpha_bf16" in inputs and bool(scalar(inputs, "alpha_bf16")) and training
    # the usage and sparsity coefficients' decay s(t) = end + (1 - end) * 0.5^(t / half_life), t = 0 without schedules
    end, half_life = scalar(inputs, "aux_scale_end"), scalar(inputs, "aux_scale_half_life")
    t = scalar(inputs, "step") if bool(scalar(inputs, "schedules")) else 0.0
    aux_scale = end + (1 - end) * 0.5 ** (t / half_life)
    T, E = u.shape
    gen = torch.Generator().manual_seed(seed)
    draws = None

    def route(xin, mask_given=None):
        """Heads, selection, contribution and weights for the router input xin."""
        nonlocal draws
        # heads
        linear = xin @ p["gate.weight"].T
        if center:
            linear = linear - linear.mean(dim=1, keepdim=True)
        logits = linear + p["gate.bias"]
        product = bf16_product["lm" if xin is x else "losses"] if alpha_bf16 else xin @ p["alpha_hidden.weight"].T
        hidden = F.silu(product + p["alpha_hidden.bias"])
        alpha_lo = a_lo + F.softplus(hidden @ p["alpha_lo.weight"].T + p["alpha_lo.bias"]) + eps
        alpha_hi = alpha_lo + F.softplus(hidden @ p["alpha_hi.weight"].T + p["alpha_hi.bias"]) + eps

        # selection: Binary Concrete with Logistic noise
        g = torch.log(u) - torch.log(1 - u) if training else torch.zeros_like(u)
        s = logits + g
        z_soft = torch.sigmoid(s / tau)
        if topk:
            mask = torch.zeros(T, E, dtype=torch.bool)
            for t in range(T):  # the k largest scores of each token, one at a time
                order = sorted(range(E), key=lambda e: -float(s[t, e]))
                mask[t, order[:int(k)]] = True
            empty = ~(s > 0).any(dim=1)
            z = mask.double() + z_soft - z_soft.detach()
        elif hard:
            selected = s > 0
            empty = ~selected.any(dim=1)
            fallback = F.one_hot(s.argmax(dim=1), E).bool()
            mask = selected | (empty[:, None] & fallback)
            z = mask.double() + z_soft - z_soft.detach()
        else:
            mask = torch.ones(T, E, dtype=torch.bool)
            z = z_soft

        # contribution
        alpha_q = lambda_q * (z_soft * alpha_hi + (1 - z_soft) * alpha_lo)
        if training:
            if draws is None:  # one draw per token and expert, shared by the LM path and the detached loss path
                draws = torch._standard_gamma(alpha_q.detach(), generator=gen)
            gamma = GammaWithDraws.apply(alpha_q, draws)
            theta = gamma / gamma.sum(dim=1, keepdim=True)
        else:
            theta = alpha_q / alpha_q.sum(dim=1, keepdim=True)
        theta = (1 - theta_mix) * theta + theta_mix / E
        if weights_all:
            zt = z_soft * theta
            r = zt / zt.sum(dim=1, keepdim=True)
            weights = r * mask.double()
        else:
            zt = z * theta
            weights = zt / zt.sum(dim=1, keepdim=True)
            r = weights

        if mask_given is not None:
            mask = mask_given
        return logits, z_soft, mask, empty if (hard or topk) else None, alpha_q, weights, r

    if alpha_bf16:
        # W_h x from bf16 operands: autograd rounds the product's gradient to bf16 and returns x's and the
        # weight's gradients as bf16 products. One product serves both paths, as with autocast where the
        # losses' path reuses the LM path's product: the weight's gradient is the bf16 product of both
        # paths' gradients summed (to_weight), x's that of the LM path's alone (to_x; same value).
        def bf16_mm(a, b):
            return (a.to(torch.bfloat16) @ b.to(torch.bfloat16).T).to(a.dtype)
        to_weight = bf16_mm(x.detach(), p["alpha_hidden.weight"])
        to_x = bf16_mm(x, p["alpha_hidden.weight"].detach())
        bf16_product = {"lm": to_weight + (to_x - to_x.detach()), "losses": to_weight}
    logits, z_soft, mask, empty, alpha_q, weights, r = route(x)
    if not training:
        draws = torch.zeros_like(alpha_q)
    lm_weights = weights
    if aux_detach:  # the losses see x detached: same values, no gradient into x (same noise and draws)
        logits, z_soft, _, _, alpha_q, _, r = route(x.detach(), mask)
    # losses (per token, then mean over tokens)
    recon_x = r @ p["decoder.weight"].T + p["decoder.bias"]
    recon = ((x.detach() - recon_x) ** 2).sum(dim=1) / (2 * sigma2)
    alpha_p = lambda_p * (z_soft * a_hi + (1 - z_soft) * a_lo)
    q0, p0 = alpha_q.sum(dim=1), alpha_p.sum(dim=1)
    kl_dir = (torch.lgamma(q0) - torch.lgamma(alpha_q).sum(dim=1) - torch.lgamma(p0) + torch.lgamma(alpha_p).sum(dim=1)
              + ((alpha_q - alpha_p) * (torch.digamma(alpha_q) - torch.digamma(q0)[:, None])).sum(dim=1))
    if sparsity_batch:
        sparsity = (z_soft.sum(dim=1).mean() - k) ** 2
    elif sparsity_expected:
        # E[(n - k)^2] by enumeration of n's distribution (Poisson-binomial), not by the closed form
        p_sel = torch.sigmoid(logits)
        dist = torch.zeros(T, E + 1, dtype=p_sel.dtype)
        dist[:, 0] = 1.0
        for i in range(E):
            shifted = torch.cat([torch.zeros(T, 1, dtype=p_sel.dtype), dist[:, :-1]], dim=1)
            dist = dist * (1 - p_sel[:, i:i + 1]) + shifted * p_sel[:, i:i + 1]
        n = torch.arange(E + 1, dtype=p_sel.dtype)
        sparsity = (dist * (n - k) ** 2).sum(dim=1).mean()
    else:
        sparsity = ((z_soft.sum(dim=1) - k) ** 2).mean()
    q = torch.sigmoid(logits / tau)
    kl_bern = (q * torch.log(q / pi) + (1 - q) * torch.log((1 - q) / (1 - pi))).sum(dim=1)
    rho = torch.sigmoid(logits).mean(dim=0)  # P(logit + Logistic noise > 0), averaged over the batch
    usage = (rho * torch.log(rho / pi) + (1 - rho) * torch.log((1 - rho) / (1 - pi))).sum()
    f = mask.double().sum(dim=0) / mask.double().sum()
    balance = E * (f * rho / rho.sum()).sum()

    losses = {
        "recon": recon.mean(),
        "kl_dir": beta_theta * kl_dir.mean(),
        "sparsity": lambda_s * aux_scale * sparsity,
        "kl_bern": beta_z * kl_bern.mean(),
        "usage_kl": beta_u * aux_scale * usage,
        "balance": balance_coef * balance,
    }
    total = sum(losses.values()) + (probe * lm_weights).sum()
    total.backward()

    n_empty = empty.sum().double() if (hard or topk) else torch.zeros((), dtype=torch.float64)
    out = {"mask": mask, "weights": lm_weights, "alpha_q": alpha_q, "gamma": draws, "total": total, "empty": n_empty,
           "expected_active": z_soft.sum(dim=1).mean(), "grad.x": x.grad}
    out.update(losses)
    for n in names:
        out["grad." + n] = p[n].grad
    save_outputs(out)


if __name__ == "__main__":
    main()
