#!/usr/bin/env python3
"""Routing plots from the HDF5 files alone (DESIGN.md "Routing statistics (HDF5)").

usage: plot_routing.py [routing.h5] [--train routing_train.h5] --out DIR

  expert_domain_layer_XX.png   p(e|d): share of each domain's routing weight per expert, per layer
  token_simpson.png            per-layer histograms of Σ_e r_e² per token with the measured mean and,
                               for DirMoE, the prior's E[Σθ²]; beside them the symmetric Dirichlet
                               curve (λ+1)/(Eλ+1) with each layer's measured mean on it
  train_load.png               per-layer expert load (fraction of tokens) over training steps
  train_active_experts.png     E[k] and token Simpson per layer over training steps
Prints the paths it wrote."""
import argparse
import json
import math
import os
import sys

import matplotlib

matplotlib.use("Agg")
import h5py  # noqa: E402
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402


def fail(message):
    print(f"plot_routing.py: error: {message}", file=sys.stderr)
    sys.exit(1)


def open_h5(path, kind):
    try:
        f = h5py.File(path, "r")
    except OSError as e:
        fail(f"{path}: cannot open as HDF5 (truncated or not HDF5?): {e}")
    if "format_version" not in f.attrs:
        fail(f"{path}: not a dirmoe {kind} file: no format_version attribute")
    if int(f.attrs["format_version"]) != 1:
        fail(f"{path}: format_version {int(f.attrs['format_version'])} is not supported (this script reads 1)")
    return f


def as_str(x):
    return x.decode() if isinstance(x, bytes) else str(x)


def dirmoe_prior_simpson(config, step, n_experts, k):
    """E[Σθ²] of the prior Dir(λ^p·a) at `step` with DESIGN.md's schedules (defaults of config.h)."""
    d = config.get("router", {}).get("dirmoe", {})
    sched = d.get("schedules", True)
    t = float(step) if sched else 0.0
    a_hi = d.get("a_hi", 1.985)
    a_lo0, a_lo1 = d.get("a_lo_start", 0.005), d.get("a_lo_end", 0.001)
    a_lo = a_lo1 + (a_lo0 - a_lo1) * d.get("a_lo_gamma", 0.5) ** (t / d.get("a_lo_eta", 1000.0))
    lp0, lp1, steps = d.get("lambda_p_start", 2.0), d.get("lambda_p_end", 0.5), d.get("lambda_p_steps", 2000.0)
    lam = lp0 + (lp1 - lp0) * (min(1.0, t / steps) if steps > 0 else 1.0)
    a = np.array([a_hi] * k + [a_lo] * (n_experts - k))
    B, S2 = a.sum(), (a ** 2).sum()
    return (lam * S2 / B + 1) / (lam * B + 1), lam


def plot_routing(path, out):
    written = []
    f = open_h5(path, "routing")
    L, E = int(f.attrs["n_layers"]), int(f.attrs["n_experts"])
    router = as_str(f.attrs["router"])
    step = int(f.attrs["step"])
    domains = [as_str(d) for d in f["domains"][...]]
    layers = []
    for l in range(L):
        name = f"layer_{l:02d}"
        if name not in f:
            fail(f"{path}: missing group /{name}")
        layers.append(f[name])

    # expert × domain heatmaps
    for l, g in enumerate(layers):
        M = g["domain_expert_tokens"][...]
        if M.size == 0:
            continue
        with np.errstate(invalid="ignore", divide="ignore"):
            P = M / M.sum(axis=1, keepdims=True)
        fig, ax = plt.subplots(figsize=(1.2 + 0.5 * E, 1.2 + 0.4 * len(domains)))
        im = ax.imshow(P, aspect="auto", cmap="viridis", vmin=0, vmax=max(1e-9, np.nanmax(P)))
        ax.set_xticks(range(E))
        ax.set_yticks(range(len(domains)))
        ax.set_yticklabels(domains)
        ax.set_xlabel("expert")
        spec = g["expert_domain_simpson_normalized"][...]
        mass = M.sum(axis=0)
        ok = np.isfinite(spec) & (mass > 0)
        s = float((spec[ok] * mass[ok]).sum() / mass[ok].sum()) if ok.any() else float("nan")
        ax.set_title(f"{router} layer {l}: p(expert | domain); expert-domain Simpson (norm.) {s:.3f}", fontsize=9)
        fig.colorbar(im, ax=ax)
        fig.tight_layout()
        p = os.path.join(out, f"expert_domain_layer_{l:02d}.png")
        fig.savefig(p, dpi=110)
        plt.close(fig)
        written.append(p)

    # token Simpson histograms against the Dirichlet reference
    prior = None
    if router == "dirmoe":
        try:
            config = json.loads(as_str(f.attrs["config"]))
            k = int(f.attrs["k_target"])
            prior = dirmoe_prior_simpson(config, step, E, k)
        except (ValueError, KeyError):
            prior = None
    cols = min(4, L)
    rows = math.ceil(L / cols)
    fig = plt.figure(figsize=(3.2 * cols + 4.5, 2.6 * rows))
    grid = fig.add_gridspec(rows, cols + 2)
    means = []
    for l, g in enumerate(layers):
        ax = fig.add_subplot(grid[l // cols, l % cols])
        hist = g["token_simpson"][...].astype(float)
        lo = float(g["token_simpson"].attrs.get("range_min", 0.0))
        hi = float(g["token_simpson"].attrs.get("range_max", 1.0))
        edges = np.linspace(lo, hi, len(hist) + 1)
        total = hist.sum()
        ax.bar(edges[:-1], hist / total if total else hist, width=np.diff(edges), align="edge", color="#4c72b0")
        mean = float(g["token_simpson"].attrs["mean"])
        means.append(mean)
        ax.axvline(mean, color="k", lw=1, label=f"mean {mean:.3f}")
        ax.axvline(1.0 / E, color="grey", lw=0.8, ls=":", label="1/E")
        if prior is not None:
            ax.axvline(prior[0], color="r", lw=1, ls="--", label=f"prior E[Σθ²] {prior[0]:.3f}")
        ax.set_title(f"layer {l}", fontsize=9)
        ax.set_xlim(0, 1)
        if l == 0:
            ax.legend(fontsize=6)
    ax = fig.add_subplot(grid[:, cols:])
    lam = np.logspace(-3, 3, 300)
    ax.plot(lam, (lam + 1) / (E * lam + 1), color="r", label=f"Dir(λ·1), E={E}: (λ+1)/(Eλ+1)")
    for l, m in enumerate(means):
        if 1.0 / E < m < 1.0:
            lam_eq = (1 - m) / (m * E - 1)
            ax.plot([lam_eq], [m], "o", ms=4, label=f"layer {l}: λ≈{lam_eq:.3g}" if L <= 8 else None)
        else:
            ax.axhline(m, color="grey", lw=0.5)
    ax.set_xscale("log")
    ax.set_xlabel("λ")
    ax.set_ylabel("E[Σ r²]")
    ax.set_ylim(0, 1.05)
    ax.legend(fontsize=6)
    ax.set_title("measured token Simpson on the Dirichlet curve", fontsize=9)
    fig.suptitle(f"{router}, step {step}: token Simpson Σ_e r_e²", fontsize=10)
    fig.tight_layout()
    p = os.path.join(out, "token_simpson.png")
    fig.savefig(p, dpi=110)
    plt.close(fig)
    written.append(p)
    f.close()
    return written


def plot_train(path, out):
    written = []
    f = open_h5(path, "routing time-series")
    L, E = int(f.attrs["n_layers"]), int(f.attrs["n_experts"])
    if "train" not in f:
        fail(f"{path}: missing group /train")
    t = f["train"]
    n = int(t.attrs.get("rows", t["step"].shape[0]))  # rows fully written (a killed run may leave one more)
    steps = t["step"][:n]
    cols = min(4, L)
    rows = math.ceil(L / cols)
    fig, axes = plt.subplots(rows, cols, figsize=(3.5 * cols, 2.6 * rows), squeeze=False)
    for l in range(L):
        ax = axes[l // cols][l % cols]
        load = t[f"layer_{l:02d}/load"][:n]
        for e in range(E):
            ax.plot(steps, load[:, e], lw=0.8)
        with np.errstate(invalid="ignore", divide="ignore"):
            imb = load.max(axis=1) / load.mean(axis=1)
        ax2 = ax.twinx()
        ax2.plot(steps, imb, color="k", lw=1, ls="--")
        ax2.set_ylabel("max/mean", fontsize=7)
        ax.set_title(f"layer {l}", fontsize=9)
        ax.set_xlabel("step", fontsize=7)
        ax.set_ylabel("fraction of tokens", fontsize=7)
    for l in range(L, rows * cols):
        axes[l // cols][l % cols].axis("off")
    fig.suptitle("expert load over training (lines: experts; dashed: max/mean)", fontsize=10)
    fig.tight_layout()
    p = os.path.join(out, "train_load.png")
    fig.savefig(p, dpi=110)
    plt.close(fig)
    written.append(p)

    fig, (a1, a2) = plt.subplots(1, 2, figsize=(10, 3.5))
    for l in range(L):
        a1.plot(steps, t[f"layer_{l:02d}/active_experts"][:n], lw=0.9, label=f"layer {l}")
        a2.plot(steps, t[f"layer_{l:02d}/token_simpson"][:n], lw=0.9, label=f"layer {l}")
    a1.set_title("E[k]: mean dispatched experts per token", fontsize=9)
    a2.set_title("mean token Simpson Σ_e r_e²", fontsize=9)
    for ax in (a1, a2):
        ax.set_xlabel("step")
    if L <= 12:
        a1.legend(fontsize=6)
    fig.tight_layout()
    p = os.path.join(out, "train_active_experts.png")
    fig.savefig(p, dpi=110)
    plt.close(fig)
    written.append(p)
    f.close()
    return written


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("routing", nargs="?", help="routing.h5 written by dirmoe-analyze")
    ap.add_argument("--train", help="routing_train.h5 written by dirmoe-train (--set train.stats_every=N)")
    ap.add_argument("--out", required=True, help="output directory for the PNG files")
    a = ap.parse_args()
    if not a.routing and not a.train:
        fail("give a routing.h5, --train routing_train.h5, or both")
    os.makedirs(a.out, exist_ok=True)
    written = []
    if a.routing:
        written += plot_routing(a.routing, a.out)
    if a.train:
        written += plot_train(a.train, a.out)
    for p in written:
        print(p)


if __name__ == "__main__":
    main()
