"""Where the time of a profiled train step goes: self time per operator from the chrome trace that
`bench_suite profile` writes (events nest per thread; an op's self time excludes the ops it calls).

    build/bin/bench_suite profile --scale d512 --router topk --repeats 2 --trace /tmp/t.json
    .venv/bin/python bench/profile_summary.py /tmp/t.json [--top 30]
"""
import argparse
import collections
import json


def main():
    p = argparse.ArgumentParser()
    p.add_argument("trace")
    p.add_argument("--top", type=int, default=30)
    a = p.parse_args()
    with open(a.trace) as f:
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
        stack = []  # [end, name, child time]
        def close(item):
            self_us[item[1]] += item[3] - item[2]
        for e in evs:
            while stack and stack[-1][0] <= e["ts"]:
                close(stack.pop())
            if stack:
                stack[-1][2] += e["dur"]
            else:
                total += e["dur"]
            stack.append([e["ts"] + e["dur"], e["name"], 0.0, e["dur"]])
            calls[e["name"]] += 1
        while stack:
            close(stack.pop())
    print(f"{'op':<48} {'self ms':>10} {'share':>7} {'calls':>7}")
    for name, us in self_us.most_common(a.top):
        print(f"{name[:48]:<48} {us / 1e3:>10.1f} {100 * us / total:>6.1f}% {calls[name]:>7}")
    print(f"{'total (top-level ops)':<48} {total / 1e3:>10.1f}")


if __name__ == "__main__":
    main()
