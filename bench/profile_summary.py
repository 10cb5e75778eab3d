"""Where the time of a profiled train step or layer goes: self time per operator from the chrome
trace that `bench_suite profile` writes (events nest per thread; an op's self time excludes the ops
it calls).

    build/bin/bench_suite profile --scale d512 --router topk --repeats 2 --trace /tmp/t.json
    .venv/bin/python bench/profile_summary.py /tmp/t.json [--top 30]

With --minus, the difference of two traces of the same number of passes, per operator and per
router part (ROUTER_PARTS: the operators only a router's own computation calls; shared GEMMs are
one line): what one router costs over another, e.g. one DirMoE layer over one top-k layer,

    build/bin/bench_suite profile --layer --router dirmoe --repeats 5 --trace /tmp/dirmoe.json
    build/bin/bench_suite profile --layer --router topk --repeats 5 --trace /tmp/topk.json
    .venv/bin/python bench/profile_summary.py /tmp/dirmoe.json --minus /tmp/topk.json

With --pair A B, one trace of `bench_suite profile --layer --router A --versus B`, whose passes of
the two layers alternate in one process, is split by its "bench::layer_pass NAME" spans, and the
median of the per-round ratios of pass wall times is printed beside the summed self times:

    build/bin/bench_suite profile --layer --router dirmoe --versus topk --repeats 24 --trace /tmp/p.json
    .venv/bin/python bench/profile_summary.py /tmp/p.json --pair dirmoe topk

Several traces on either side (rounds of the same passes) are summed. An operator that runs inside
one of the toolkit's named spans (SCOPE_PARTS, RECORD_FUNCTION in the library) is listed as
"span > operator" and counted to the span's part, whatever the operator.
"""
import argparse
import collections
import json
import statistics


# Operator name (substring, lower case) → the router part that calls it. First match wins; the order
# puts the specific names before the generic ones. Forward and backward both count.
ROUTER_PARTS = [
    ("dirichlet_kl", "Dirichlet KL (lgamma, digamma)"),  # the CPU node: its span and its backward
    ("lgamma", "Dirichlet KL (lgamma, digamma)"),
    ("digamma", "Dirichlet KL (lgamma, digamma)"),
    ("polygamma", "Dirichlet KL (lgamma, digamma)"),
    ("gamma", "Gamma draw and its implicit gradient"),
    ("softplus", "alpha heads (softplus)"),
    ("silu", "alpha MLP hidden (SiLU)"),
    ("log_sigmoid", "log-weights and Bernoulli terms"),
    ("sigmoid", "selection (sigmoid)"),
    ("softmax", "log-weights (softmax)"),
    ("topk", "top-k / argmax selection"),
    ("argmax", "top-k / argmax selection"),
    ("sort", "top-k / argmax selection"),
    ("uniform", "noise draws"),
    ("random", "noise draws"),
    ("mm", "GEMMs (experts, gate, alpha MLP, decoder)"),
    ("linear", "GEMMs (experts, gate, alpha MLP, decoder)"),
    ("matmul", "GEMMs (experts, gate, alpha MLP, decoder)"),
    ("index", "dispatch and combine (gather/scatter)"),
    ("scatter", "dispatch and combine (gather/scatter)"),
    ("gather", "dispatch and combine (gather/scatter)"),
    ("cat", "copies (cat, clone, to, contiguous)"),
    ("clone", "copies (cat, clone, to, contiguous)"),
    ("copy", "copies (cat, clone, to, contiguous)"),
    ("contiguous", "copies (cat, clone, to, contiguous)"),
    ("_to_copy", "copies (cat, clone, to, contiguous)"),
]


# Named spans of the library (RECORD_FUNCTION) → the part their operators count to. The innermost
# listed span wins.
SCOPE_PARTS = {
    "dirmoe::counter_gamma": "Gamma draws (counter-based Marsaglia-Tsang, forward)",
    "dirmoe::counter_uniform": "noise draws",
    "dirmoe::reconstruction_mse": "reconstruction decoder and loss (forward)",
}


def part_of(name):
    scope = name.split(" > ")[0]
    if scope in SCOPE_PARTS:
        return SCOPE_PARTS[scope]
    low = name.lower()
    for key, part in ROUTER_PARTS:
        if key in low:
            return part
    return "element-wise and reductions (mul, add, sum, ...)"


PASS_SPAN = "bench::layer_pass "


def load_events(path):
    with open(path) as f:
        data = json.load(f)
    events = data["traceEvents"] if isinstance(data, dict) else data
    return [e for e in events if e.get("ph") == "X" and "dur" in e]


def self_times(path, side=None):
    """({op: self µs}, {op: calls}, total µs of the top-level events) of one chrome trace; with
    `side`, only the events inside its "bench::layer_pass SIDE" spans."""
    events = load_events(path)
    if side is not None:
        spans = [(e["ts"], e["ts"] + e["dur"]) for e in events if e["name"] == PASS_SPAN + side]
        if not spans:
            raise SystemExit(f"{path}: no '{PASS_SPAN}{side}' spans (was it written with --layer --versus?)")
        # By time, on any thread: the passes run one after another (each ends with a device sync), and
        # a CUDA backward runs on the autograd engine's device thread, not the span's.
        inside = lambda e: any(b <= e["ts"] and e["ts"] + e["dur"] <= f for b, f in spans)
        events = [e for e in events if inside(e) and e["name"] != PASS_SPAN + side]
    by_thread = collections.defaultdict(list)
    for e in events:
        by_thread[e.get("tid")].append(e)
    self_us = collections.Counter()
    calls = collections.Counter()
    total = 0.0
    for evs in by_thread.values():
        evs.sort(key=lambda e: (e["ts"], -e["dur"]))
        stack = []  # [end, key, child time, duration, enclosing span or None]
        for e in evs:
            while stack and stack[-1][0] <= e["ts"]:
                item = stack.pop()
                self_us[item[1]] += item[3] - item[2]
            if stack:
                stack[-1][2] += e["dur"]
            else:
                total += e["dur"]
            span = e["name"] if e["name"] in SCOPE_PARTS else (stack[-1][4] if stack else None)
            key = e["name"] if span is None or span == e["name"] else f"{span} > {e['name']}"
            stack.append([e["ts"] + e["dur"], key, 0.0, e["dur"], span])
            calls[key] += 1
        while stack:
            item = stack.pop()
            self_us[item[1]] += item[3] - item[2]
    return self_us, calls, total


def pass_ratio(path, a, b):
    """(median, min, max, number, list) of the per-round ratios of a's pass wall time over b's."""
    events = load_events(path)
    durations = {side: [e["dur"] for e in sorted(events, key=lambda e: e["ts"]) if e["name"] == PASS_SPAN + side]
                 for side in (a, b)}
    ratios = [x / y for x, y in zip(durations[a], durations[b])]
    if not ratios:
        return None
    return statistics.median(ratios), min(ratios), max(ratios), len(ratios), ratios


def summed_self_times(paths, side=None):
    """self_times of several traces, added."""
    self_us, calls, total = collections.Counter(), collections.Counter(), 0.0
    for path in paths:
        s, c, t = self_times(path, side)
        self_us.update(s)
        calls.update(c)
        total += t
    return self_us, calls, total


def main():
    p = argparse.ArgumentParser()
    p.add_argument("trace", nargs="+", help="one or more traces (summed)")
    p.add_argument("--top", type=int, default=30)
    p.add_argument("--minus", nargs="+",
                   help="traces of the other side (summed): print the per-operator and per-part difference")
    p.add_argument("--pair", nargs=2, metavar=("A", "B"),
                   help="split one --layer --versus trace into A's passes minus B's")
    a = p.parse_args()
    if a.pair and a.minus:
        raise SystemExit("--pair and --minus: give one of them")
    self_us, calls, total = summed_self_times(a.trace, a.pair[0] if a.pair else None)
    if a.pair:
        pooled = []
        for path in a.trace:
            r = pass_ratio(path, *a.pair)
            if r:
                pooled += r[4]
                print(f"{path}: {a.pair[0]} pass / {a.pair[1]} pass, median of {r[3]} rounds {r[0]:.3f}x "
                      f"(range {r[1]:.3f}-{r[2]:.3f})")
        if len(a.trace) > 1 and pooled:
            print(f"all traces: median of {len(pooled)} rounds {statistics.median(pooled):.3f}x")
    if not a.minus and not a.pair:
        print(f"{'op':<48} {'self ms':>10} {'share':>7} {'calls':>7}")
        for name, us in self_us.most_common(a.top):
            print(f"{name[:48]:<48} {us / 1e3:>10.1f} {100 * us / total:>6.1f}% {calls[name]:>7}")
        print(f"{'total (top-level ops)':<48} {total / 1e3:>10.1f}")
        return
    base_us, base_calls, base_total = summed_self_times(a.trace, a.pair[1]) if a.pair else summed_self_times(a.minus)
    names = set(self_us) | set(base_us)
    diff = {n: self_us.get(n, 0.0) - base_us.get(n, 0.0) for n in names}
    print(f"total: {total / 1e3:.1f} ms against {base_total / 1e3:.1f} ms ({total / base_total:.3f}x)")
    print()
    print("| router part | ms over the other trace | share of the other's total |")
    print("|---|---|---|")
    parts = collections.Counter()
    for n, d in diff.items():
        parts[part_of(n)] += d
    for part, d in sorted(parts.items(), key=lambda kv: -kv[1]):
        print(f"| {part} | {d / 1e3:+.1f} | {100 * d / base_total:+.1f}% |")
    print()
    print(f"| op | self ms | other ms | difference | calls | other calls |")
    print("|---|---|---|---|---|---|")
    for n in sorted(names, key=lambda n: -abs(diff[n]))[: a.top]:
        print(f"| {n[:48]} | {self_us.get(n, 0) / 1e3:.1f} | {base_us.get(n, 0) / 1e3:.1f} | "
              f"{diff[n] / 1e3:+.1f} | {calls.get(n, 0)} | {base_calls.get(n, 0)} |")


if __name__ == "__main__":
    main()
