#!/usr/bin/env python3
"""Results table of a router sweep (experiments/sweeps/compare_routers.sh).

Reads, for every <out>/<router>/seed<N>/ run: summary.json (dirmoe-train), eval.json (dirmoe-eval)
and analysis/report.json (dirmoe-analyze), and writes into <out>:
  results.md   per router, mean ± std over seeds: validation loss and perplexity, each task's
               accuracy and their average, measured E[k] with a parity column, load CV,
               token Simpson, expert-domain Simpson (normalised), domain-expert Simpson, training
               tokens/s; then per layer (mean over seeds, layers separated by "/"): E[k] in
               training (after warm-up) and at evaluation (dirmoe-analyze), load max/mean and
               load CV at evaluation
  results.csv  the same numbers, one row per router, one column per figure (mean and std)
  val_loss.png validation loss over tokens per router (from metrics.jsonl), mean over seeds
Runs that are missing a file contribute nothing to the figures that file holds (n is shown).
"""
import argparse
import csv
import json
import math
import os
import sys
from pathlib import Path


def load_json(path):
    try:
        with open(path) as f:
            return json.load(f)
    except FileNotFoundError:
        return None
    except json.JSONDecodeError as e:
        print(f"results_table: {path}: not valid JSON ({e}); skipped", file=sys.stderr)
        return None


def write_atomic(path, write):
    tmp = path.with_name(path.name + ".tmp")
    with open(tmp, "w", newline="") as f:
        write(f)
    os.replace(tmp, path)


def mean_std(values):
    values = [v for v in values if v is not None and math.isfinite(v)]
    if not values:
        return None, None, 0
    m = sum(values) / len(values)
    s = math.sqrt(sum((v - m) ** 2 for v in values) / (len(values) - 1)) if len(values) > 1 else 0.0
    return m, s, len(values)


def task_accuracy(task_result):
    metrics = task_result.get("metrics", {})
    for name in ("acc_norm", "acc"):
        if name in metrics:
            return metrics[name]["value"]
    return None


def collect_run(run_dir):
    row = {}
    summary = load_json(run_dir / "summary.json")
    if summary:
        row["val_loss"] = summary.get("best_val_loss")
        row["val_ppl"] = math.exp(row["val_loss"]) if row["val_loss"] is not None else None
        row["tokens_per_s"] = summary.get("tokens_per_s")
        parity = summary.get("parity", {})
        ek = [l.get("mean_active_experts") for l in parity.get("layers", []) if l.get("mean_active_experts") is not None]
        row["ek"] = sum(ek) / len(ek) if ek else None
        row["layers:ek_train"] = [l.get("mean_active_experts") for l in parity.get("layers", [])]
        row["parity_ok"] = parity.get("ok")
        row["target_k"] = parity.get("target_k")
        row["params"] = summary.get("parameters", {}).get("total")
    ev = load_json(run_dir / "eval.json")
    if ev:
        for task, result in ev.get("tasks", {}).items():
            row[f"task:{task}"] = task_accuracy(result)
    report = load_json(run_dir / "analysis" / "report.json")
    if report and "mean" in report:
        mean = report["mean"]
        row["load_cv"] = mean.get("load_cv")
        row["token_simpson"] = mean.get("token_simpson")
        row["expert_domain_simpson"] = mean.get("expert_domain_specialization")
        row["domain_expert_simpson"] = mean.get("domain_expert_simpson")
        layers = report.get("layers", [])
        row["layers:ek_eval"] = [l.get("active_experts") for l in layers]
        row["layers:load_max_over_mean"] = [l.get("load_max_over_mean") for l in layers]
        row["layers:load_cv"] = [l.get("load_cv") for l in layers]
    return row


def per_layer(rows, key, digits):
    """Per-layer means over the runs that have the figure, joined by "/", and the largest std."""
    lists = [r.get(key) for r in rows if r.get(key)]
    if not lists:
        return "—", []
    n_layers = min(len(x) for x in lists)
    means, stds = [], []
    for i in range(n_layers):
        m, s, _ = mean_std([x[i] for x in lists])
        means.append(m)
        stds.append(s)
    if any(m is None for m in means):
        return "—", means
    text = "/".join(f"{m:.{digits}f}" for m in means)
    if len(lists) > 1:
        text += f" (±{max(stds):.{digits}f})"
    return text, means


def val_curve(run_dir):
    points = []
    path = run_dir / "metrics.jsonl"
    if not path.exists():
        return points
    for line in path.read_text().splitlines():
        try:
            rec = json.loads(line)
        except json.JSONDecodeError:
            continue
        if "val_loss" in rec and rec.get("val_loss") is not None:
            points.append((rec.get("tokens", rec.get("step", 0)), rec["val_loss"]))
    return points


def fmt(m, s, digits=3):
    if m is None:
        return "—"
    return f"{m:.{digits}f} ± {s:.{digits}f}"


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("out", type=Path, help="sweep output directory")
    ap.add_argument("--routers", nargs="+", default=["dirmoe", "switch", "remoe", "sparsemixer"],
                    help="run groups to tabulate: <out>/<name>/seed*/ for each name")
    ap.add_argument("--label", default="router", help="what a run group is called in the table's first column")
    args = ap.parse_args()

    runs = {}
    tasks = []
    for router in args.routers:
        seeds = sorted((args.out / router).glob("seed*")) if (args.out / router).is_dir() else []
        runs[router] = [(d, collect_run(d)) for d in seeds]
        for _, row in runs[router]:
            tasks += [k[5:] for k in row if k.startswith("task:") and k[5:] not in tasks]
    if not any(runs.values()):
        print(f"results_table: no runs under {args.out}", file=sys.stderr)
        return 1

    columns = [("val_loss", "val loss", 3), ("val_ppl", "val ppl", 2)]
    columns += [(f"task:{t}", t, 3) for t in tasks]
    columns += [("avg_acc", "avg acc", 3), ("ek", "E[k]", 3), ("load_cv", "load CV", 3),
                ("token_simpson", "token Simpson", 3), ("expert_domain_simpson", "expert-domain Simpson", 3),
                ("domain_expert_simpson", "domain-expert Simpson", 3), ("tokens_per_s", "tokens/s", 0)]
    layer_columns = [("layers:ek_train", "E[k] train per layer", 3), ("layers:ek_eval", "E[k] eval per layer", 3),
                     ("layers:load_max_over_mean", "load max/mean per layer", 2),
                     ("layers:load_cv", "load CV per layer", 2)]
    for router, rs in runs.items():
        for _, row in rs:
            accs = [row.get(f"task:{t}") for t in tasks]
            row["avg_acc"] = sum(accs) / len(accs) if accs and all(a is not None for a in accs) else None

    header = [args.label, "seeds"] + [c[1] for c in columns] + ["parity"] + [c[1] for c in layer_columns]
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    csv_rows = []
    for router, rs in runs.items():
        rows = [r for _, r in rs]
        cells = [router, str(len(rows))]
        csv_row = {args.label: router, "seeds": len(rows)}
        for key, _, digits in columns:
            m, s, n = mean_std([r.get(key) for r in rows])
            cells.append(fmt(m, s, digits))
            csv_row[f"{key}_mean"] = m
            csv_row[f"{key}_std"] = s
        flags = [r.get("parity_ok") for r in rows]
        parity = "ok" if flags and all(f is True for f in flags) else ("FLAGGED" if any(f is False for f in flags) else "—")
        cells.append(parity)
        csv_row["parity"] = parity
        for key, _, digits in layer_columns:
            text, means = per_layer(rows, key, digits)
            cells.append(text)
            for i, m in enumerate(means):
                csv_row[f"{key[7:]}_layer{i}_mean"] = m
        lines.append("| " + " | ".join(cells) + " |")
        csv_rows.append(csv_row)

    params = {router: [r.get("params") for _, r in rs] for router, rs in runs.items()}
    note = ("Mean ± std over seeds. Accuracy: acc_norm where the task has it, else acc. E[k]: measured active "
            "experts per token (mean over layers, after warm-up); parity FLAGGED when a layer strays more than the "
            "run's tolerance from k. Per-layer columns: the mean over seeds of each layer, layers separated by '/', "
            "and in brackets the largest std over the layers; 'eval' figures come from dirmoe-analyze (the model in "
            "evaluation mode over validation tokens). Parameters: " +
            ", ".join(f"{r} {p[0]:,}" for r, p in params.items() if p and p[0]) + ".")
    text = "\n".join(lines) + "\n\n" + note + "\n"
    # Written to a temporary name and renamed, so an interrupted collector never leaves half a table.
    write_atomic(args.out / "results.md", lambda f: f.write(text))

    def write_csv(f):
        fields = list(dict.fromkeys(k for row in csv_rows for k in row))  # union, first-seen order
        writer = csv.DictWriter(f, fieldnames=fields)
        writer.writeheader()
        writer.writerows(csv_rows)
    write_atomic(args.out / "results.csv", write_csv)

    try:
        import matplotlib
        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
        fig, ax = plt.subplots(figsize=(6, 4))
        for router, rs in runs.items():
            curves = [val_curve(d) for d, _ in rs]
            curves = [c for c in curves if c]
            if not curves:
                continue
            n = min(len(c) for c in curves)
            xs = [curves[0][i][0] for i in range(n)]
            ys = [sum(c[i][1] for c in curves) / len(curves) for i in range(n)]
            ax.plot(xs, ys, marker="o", label=router)
        ax.set_xlabel("training tokens")
        ax.set_ylabel("validation loss")
        ax.legend()
        ax.grid(alpha=0.3)
        fig.tight_layout()
        tmp = args.out / "val_loss.png.tmp"
        fig.savefig(tmp, dpi=120, format="png")
        os.replace(tmp, args.out / "val_loss.png")
    except Exception as e:  # the table matters more than the figure
        print(f"results_table: figure skipped: {e}", file=sys.stderr)

    print(text, end="")
    print(f"results_table: wrote {args.out / 'results.md'}, results.csv, val_loss.png")
    return 0


if __name__ == "__main__":
    sys.exit(main())
