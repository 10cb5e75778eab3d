"""Writes routing.h5 / routing_train.h5 files with h5py, from the schema in DESIGN.md alone, so the
C++ reader and the plots are tested on files they did not write.

usage: make_routing_h5.py OUT.h5 --router NAME [--experts E] [--layers L] [--skew S] [--seed N]
       make_routing_h5.py OUT.h5 --train --layers L --experts E --steps N
The routing file's token Simpson histogram puts every token in one bin chosen so that each layer's
mean is known (printed as JSON on stdout with E[k] and load max/mean for the test to check)."""
import argparse
import json

import h5py
import numpy as np

p = argparse.ArgumentParser()
p.add_argument("out")
p.add_argument("--router", default="topk")
p.add_argument("--experts", type=int, default=4)
p.add_argument("--layers", type=int, default=2)
p.add_argument("--skew", type=float, default=0.0)
p.add_argument("--seed", type=int, default=1)
p.add_argument("--train", action="store_true")
p.add_argument("--steps", type=int, default=20)
a = p.parse_args()
E, L = a.experts, a.layers
rng = np.random.default_rng(a.seed)

if a.train:
    with h5py.File(a.out, "w") as f:
        f.attrs["format_version"] = np.int64(1)
        f.attrs["n_layers"] = np.int64(L)
        f.attrs["n_experts"] = np.int64(E)
        f.attrs["router"] = a.router
        t = f.create_group("train")
        t.attrs["rows"] = np.int64(a.steps)
        t["step"] = np.arange(a.steps, dtype=np.int64) * 10
        t["n_tokens"] = np.full(a.steps, 1000, dtype=np.int64)
        for l in range(L):
            g = t.create_group(f"layer_{l:02d}")
            load = rng.dirichlet(np.ones(E) * 5, size=a.steps)
            g["load"] = load
            g["active_experts"] = load.sum(axis=1)
            g["token_simpson"] = np.linspace(0.9, 0.6, a.steps)
    raise SystemExit(0)

domains = ["code", "docs", "prose"]
Dn = len(domains)
config = {"model": {"n_experts": E, "n_experts_active": 1}, "router": {"type": a.router}}
expected = {"layers": []}
with h5py.File(a.out, "w") as f:
    f.attrs["format_version"] = np.int64(1)
    f.attrs["router"] = a.router
    f.attrs["n_layers"] = np.int64(L)
    f.attrs["n_experts"] = np.int64(E)
    f.attrs["k_target"] = np.int64(1)
    f.attrs["step"] = np.int64(500)
    f.attrs["config"] = json.dumps(config)
    f.attrs["git_rev"] = "test"
    f.create_dataset("domains", data=np.array(domains, dtype=object), dtype=h5py.string_dtype())
    bins = 10
    for l in range(L):
        g = f.create_group(f"layer_{l:02d}")
        n = 1200
        tokens = rng.multinomial(n, (np.ones(E) + a.skew * np.eye(E)[0]) / (E + a.skew))
        g.attrs["n_tokens"] = np.int64(n)
        g["tokens_per_expert"] = tokens.astype(np.int64)
        g["weight_per_expert"] = tokens.astype(np.float64) * 0.8
        hist = np.zeros(E + 1, dtype=np.int64)
        hist[1] = n
        g["active_experts_hist"] = hist
        M = rng.random((Dn, E)) + 3 * a.skew * np.eye(Dn, E)
        g["domain_expert_tokens"] = M
        co = np.diag(tokens).astype(np.int64)
        g["expert_coactivation"] = co
        ts = np.zeros(bins, dtype=np.int64)
        ts[bins - 1] = n
        d = g.create_dataset("token_simpson", data=ts)
        d.attrs["mean"] = 1.0
        d.attrs["count"] = np.int64(n)
        d.attrs["range_min"] = 0.0
        d.attrs["range_max"] = 1.0
        pde = M / M.sum(axis=0, keepdims=True)
        s_e = (pde ** 2).sum(axis=0)
        g["expert_domain_simpson"] = s_e
        g["expert_domain_simpson_normalized"] = (s_e - 1 / Dn) / (1 - 1 / Dn)
        g["domain_expert_simpson"] = ((M / M.sum(axis=1, keepdims=True)) ** 2).sum(axis=1)
        expected["layers"].append({"load_max_over_mean": float(tokens.max() / tokens.mean()), "active_experts": 1.0})
print(json.dumps(expected))
