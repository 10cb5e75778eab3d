"""Exact implicit derivative of a Gamma(alpha, 1) draw x with respect to alpha.

Inputs: alpha (N,), x (N,), float64. Output: grad (N,) = -(dF/dalpha)/(dF/dx), F(alpha, x) the
regularised lower incomplete gamma function (the Gamma CDF); dF/dalpha by mpmath's numerical
differentiation at 30 significant digits, dF/dx the Gamma density.
"""
import mpmath
import torch

from exchange import load_inputs, save_outputs

mpmath.mp.dps = 30


def implicit_grad(a, x):
    a, x = mpmath.mpf(a), mpmath.mpf(x)
    dF_da = mpmath.diff(lambda s: mpmath.gammainc(s, 0, x, regularized=True), a)
    density = mpmath.exp((a - 1) * mpmath.log(x) - x - mpmath.loggamma(a))
    return float(-dF_da / density)


inputs = load_inputs()
alpha, x = inputs["alpha"].tolist(), inputs["x"].tolist()
save_outputs({"grad": torch.tensor([implicit_grad(a, v) for a, v in zip(alpha, x)], dtype=torch.float64)})
