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
"""
import argparse
import collections
import json


# Operator name (substring, lower case) → the router part that calls it. First match wins; the order
# puts the specific names before the generic ones. Forward and backward both count.
ROUTER_PARTS = [
    ("gamma", "Gamma draw and its implicit gradient"),
    ("lgamma", "Dirichlet KL (lgamma, digamma)"),
    ("digamma", "Dirichlet KL (lgamma, digamma)"),
    ("polygamma", "Dirichlet KL (lgamma, digamma)"),
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


def part_of(name):
    low = name.lower()
    for key, part in ROUTER_PARTS:
        if key in low:
            return part
    return "element-wise and reductions (mul, add, sum, ...)"


def self_times(path):
    """({op: self µs}, {op: calls}, total µs of the top-level events) of one chrome trace."""
    with open(path) as f:
        data = json.load(f)
    events = data["traceEvents"] if isinstance(data, dict) else data
    by_thread = collections.defaultdict(list)
    for e in events:
        if e.get("ph") == "X" and "dur" in e:
            by_thread[e.get("tid")].append(e)
    self_us = collections.Counter()
    calls = collections.Counter()
    total = 0.0
    for evs in by_thread.values():
        evs.sort(key=lambda e: (e["ts"], -e["dur"]))
        stack = []  # [end, name, child time, duration]
        for e in evs:
            while stack and stack[-1][0] <= e["ts"]:
                item = stack.pop()
                self_us[item[1]] += item[3] - item[2]
            if stack:
                stack[-1][2] += e["dur"]
            else:
                total += e["dur"]
            stack.append([e["ts"] + e["dur"], e["name"], 0.0, e["dur"]])
            calls[e["name"]] += 1
        while stack:
            item = stack.pop()
            self_us[item[1]] += item[3] - item[2]
    return self_us, calls, total


def main():
    p = argparse.ArgumentParser()
    p.add_argument("trace")
    p.add_argument("--top", type=int, default=30)
    p.add_argument("--minus", help="a second trace: print the per-operator and per-part difference")
    a = p.parse_args()
    self_us, calls, total = self_times(a.trace)
    if not a.minus:
        print(f"{'op':<48} {'self ms':>10} {'share':>7} {'calls':>7}")
        for name, us in self_us.most_common(a.top):
            print(f"{name[:48]:<48} {us / 1e3:>10.1f} {100 * us / total:>6.1f}% {calls[name]:>7}")
        print(f"{'total (top-level ops)':<48} {total / 1e3:>10.1f}")
        return
    base_us, base_calls, base_total = self_times(a.minus)
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
