#!/usr/bin/env python3
"""Training diagnostics of a sweep, per group (docs/dirmoe.md "Why DirMoE stopped learning").

For every <out>/<group>/seed<N>/ run, from metrics.jsonl, summary.json and analysis/report.json:
  val@...      validation loss at the given steps (--steps, default: every logged validation)
  final        final validation loss (summary.json)
  clipped      fraction of all steps clipped (summary.json clipped_steps), and of the logged steps
               in the second half of training whose gradient norm exceeded train.grad_clip
  w_disp       mean combine weight of the dispatched experts (router metric dispatched_weight),
               mean over the last 10% of the logged steps
  |g| ...      per-term gradient norms at the last step that measured them (train.grad_norm_terms_every):
               the LM loss on the trunk and on the gate, and the auxiliary losses together on the trunk
               (the root of the sum of their squares: their directions are not known, so this is the
               size of each one's pull, not of their sum)
  load, Simpson  evaluation-mode load max/mean (per layer) and expert-domain Simpson (dirmoe-analyze)
Prints a markdown table (mean ± std over seeds); --csv FILE writes the per-run rows too.
"""
import argparse
import csv
import json
import math
import sys
from pathlib import Path


def mean_std(values):
    values = [v for v in values if v is not None and math.isfinite(v)]
    if not values:
        return None, None
    m = sum(values) / len(values)
    s = math.sqrt(sum((v - m) ** 2 for v in values) / (len(values) - 1)) if len(values) > 1 else 0.0
    return m, s


def load_json(path):
    try:
        return json.loads(Path(path).read_text())
    except (FileNotFoundError, json.JSONDecodeError):
        return None


def run_row(run_dir, steps):
    lines = []
    path = run_dir / "metrics.jsonl"
    if path.exists():
        for text in path.read_text().splitlines():
            try:
                lines.append(json.loads(text))
            except json.JSONDecodeError:
                pass
    summary = load_json(run_dir / "summary.json") or {}
    config = load_json(run_dir / "config.json") or {}
    clip = config.get("train", {}).get("grad_clip", summary.get("clipped_steps", {}).get("grad_clip", 1.0))
    row = {"run": str(run_dir)}
    vals = {x["step"]: x["val_loss"] for x in lines if x.get("val_loss") is not None}
    for s in steps:
        row[f"val@{s}"] = vals.get(s)
    row["final"] = summary.get("final_val_loss")
    cs = summary.get("clipped_steps")
    row["clipped_all"] = cs.get("fraction") if isinstance(cs, dict) else None
    max_step = max((x["step"] for x in lines), default=0)
    late = [x for x in lines if x["step"] > max_step / 2 and x.get("grad_norm") is not None]
    row["clipped_late"] = sum(x["grad_norm"] > clip for x in late) / len(late) if late and clip > 0 else None
    row["grad_norm_late"] = sorted(x["grad_norm"] for x in late)[len(late) // 2] if late else None
    tail = [x for x in lines if x["step"] > 0.9 * max_step]
    w = [x.get("router_metrics", {}).get("dispatched_weight") for x in tail]
    row["w_disp"] = mean_std(w)[0]
    terms = [x for x in lines if "grad_norm_terms" in x]
    if terms:
        t = terms[-1]["grad_norm_terms"]
        row["terms_step"] = terms[-1]["step"]
        row["lm_trunk"] = t.get("lm_loss", {}).get("trunk")
        row["lm_gate"] = t.get("lm_loss", {}).get("gate")
        aux = [v.get("trunk") for k, v in t.items() if k != "lm_loss" and v.get("trunk") is not None]
        row["aux_trunk"] = math.sqrt(sum(a * a for a in aux)) if aux else None
        for k, v in t.items():
            if k != "lm_loss":
                row[f"trunk:{k}"] = v.get("trunk")
    report = load_json(run_dir / "analysis" / "report.json")
    if report:
        row["load_max_over_mean"] = [l.get("load_max_over_mean") for l in report.get("layers", [])]
        row["expert_domain_simpson"] = report.get("mean", {}).get("expert_domain_specialization")
    return row


def fmt(m, s, digits=3):
    if m is None:
        return "—"
    return f"{m:.{digits}f}" + (f" ± {s:.{digits}f}" if s else "")


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("out", type=Path, help="sweep output directory (<out>/<group>/seed<N>/)")
    ap.add_argument("--groups", nargs="+", help="groups in table order (default: every subdirectory)")
    ap.add_argument("--steps", nargs="+", type=int, default=[], help="steps whose validation loss to show")
    ap.add_argument("--csv", type=Path, help="write the per-run rows here")
    args = ap.parse_args()
    groups = args.groups or sorted(p.name for p in args.out.iterdir() if p.is_dir())
    all_rows = []
    cols = [f"val@{s}" for s in args.steps] + ["final"]
    header = (["group", "seeds"] + cols +
              ["clipped (all / 2nd half)", "median ‖g‖ 2nd half", "w_disp", "‖∇LM‖ trunk / gate", "‖∇aux‖ trunk",
               "load max/mean (eval)", "expert-domain Simpson"])
    print("| " + " | ".join(header) + " |")
    print("|" + "---|" * len(header))
    for g in groups:
        rows = [run_row(d, args.steps) for d in sorted((args.out / g).glob("seed*")) if d.is_dir()]
        if not rows:
            continue
        all_rows += [{"group": g, **r} for r in rows]
        cells = [g, str(len(rows))]
        for c in cols:
            cells.append(fmt(*mean_std([r.get(c) for r in rows])))
        ca, _ = mean_std([r.get("clipped_all") for r in rows])
        cl, _ = mean_std([r.get("clipped_late") for r in rows])
        cells.append("—" if ca is None else f"{100 * ca:.0f}% / {100 * cl:.0f}%" if cl is not None else f"{100 * ca:.0f}%")
        cells.append(fmt(*mean_std([r.get("grad_norm_late") for r in rows]), 2))
        cells.append(fmt(*mean_std([r.get("w_disp") for r in rows]), 3))
        lt, _ = mean_std([r.get("lm_trunk") for r in rows])
        lg, _ = mean_std([r.get("lm_gate") for r in rows])
        cells.append("—" if lt is None else f"{lt:.2f} / {lg:.3f}")
        cells.append(fmt(*mean_std([r.get("aux_trunk") for r in rows]), 2))
        loads = [r["load_max_over_mean"] for r in rows if r.get("load_max_over_mean")]
        if loads:
            n = min(len(x) for x in loads)
            cells.append("/".join(f"{mean_std([x[i] for x in loads])[0]:.2f}" for i in range(n)))
        else:
            cells.append("—")
        cells.append(fmt(*mean_std([r.get("expert_domain_simpson") for r in rows])))
        print("| " + " | ".join(cells) + " |")
    if args.csv:
        keys = sorted({k for r in all_rows for k in r})
        with open(args.csv, "w", newline="") as f:
            w = csv.DictWriter(f, fieldnames=keys)
            w.writeheader()
            for r in all_rows:
                w.writerow({k: (json.dumps(v) if isinstance(v, list) else v) for k, v in r.items()})
    return 0


if __name__ == "__main__":
    sys.exit(main())
