"""Counter-based router noise from its written definition (docs/parallel.md "Router noise"), in plain
Python integers and floats: Philox4x32-10 as Random123 defines it, the counter layout, the uniform
conversion ((w >> 9) + 0.5)·2^-23 and the Gamma sampler (Marsaglia & Tsang with 8 candidates,
Box–Muller normals, the α < 1 boost U^(1/α)).

Inputs (0-dim int64 unless noted): seed, draw, layer, token_offset, stream, rows, cols, words,
alpha (rows, cols) float64 (for the Gamma draws, stream gamma_stream). Outputs: uniform
(rows, cols, words) float64 and gamma (rows, cols) float64.
"""
import math

import torch

from exchange import load_inputs, save_outputs

M32 = 0xFFFFFFFF


def philox4x32_10(ctr, key):
    c0, c1, c2, c3 = ctr
    k0, k1 = key
    for r in range(10):
        if r > 0:
            k0, k1 = (k0 + 0x9E3779B9) & M32, (k1 + 0xBB67AE85) & M32
        p0 = 0xD2511F53 * c0
        p1 = 0xCD9E8D57 * c2
        c0, c1, c2, c3 = ((p1 >> 32) ^ c1 ^ k0) & M32, p1 & M32, ((p0 >> 32) ^ c3 ^ k1) & M32, p0 & M32
    return c0, c1, c2, c3


def uniform_words(seed, draw, layer, token, stream, col, words):
    out = []
    for b in range((words + 3) // 4):
        ctr = (token & M32, col | (b << 20) | (stream << 28), draw & M32, layer | ((token >> 32) & 0xFFFF) << 16)
        for w in philox4x32_10(ctr, (seed & M32, seed >> 32)):
            out.append(((w >> 9) + 0.5) / 8388608.0)
    return out[:words]


def gamma(alpha, u):
    k = 8
    a = alpha + 1.0 if alpha < 1.0 else alpha
    d = a - 1.0 / 3.0
    c = 1.0 / math.sqrt(9.0 * d)
    xs = []
    for j in range(k // 2):
        r = math.sqrt(-2.0 * math.log(u[j]))
        xs.append(r * math.cos(2.0 * math.pi * u[k // 2 + j]))
    for j in range(k // 2):
        r = math.sqrt(-2.0 * math.log(u[j]))
        xs.append(r * math.sin(2.0 * math.pi * u[k // 2 + j]))
    value = d
    for j, x in enumerate(xs):
        v = (1.0 + c * x) ** 3
        if v > 0 and math.log(u[k + j]) < 0.5 * x * x + d - d * v + d * math.log(v):
            value = d * v
            break
    if alpha < 1.0:
        value *= math.exp(math.log(u[2 * k]) / alpha)
    return max(value, 2.2250738585072014e-308)


inputs = load_inputs()
get = lambda name: int(inputs[name].item())
seed, draw, layer, offset, stream = get("seed"), get("draw"), get("layer"), get("token_offset"), get("stream")
rows, cols, words = get("rows"), get("cols"), get("words")
uniform = torch.tensor([[uniform_words(seed, draw, layer, offset + t, stream, c, words) for c in range(cols)]
                        for t in range(rows)], dtype=torch.float64)
alpha = inputs["alpha"].tolist()
gamma_stream = get("gamma_stream")
draws = torch.tensor([[gamma(alpha[t][c], uniform_words(seed, draw, layer, offset + t, gamma_stream, c, 17))
                       for c in range(len(alpha[0]))] for t in range(len(alpha))], dtype=torch.float64)
save_outputs({"uniform": uniform, "gamma": draws})
