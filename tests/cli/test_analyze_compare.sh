#!/usr/bin/env bash
# dirmoe-analyze compare: a table across runs from files written by h5py (not by dirmoe), and
# foreign, truncated and non-HDF5 files refused with a message naming the file and the problem.
set -euo pipefail
BIN=${DIRMOE_BIN_DIR:?}
PY=${DIRMOE_PYTHON:?}
SRC=${DIRMOE_SOURCE_DIR:-$(cd "$(dirname "$0")/../.." && pwd)}
T=$(mktemp -d)
trap 'rm -rf "$T"' EXIT
fail() { echo "FAIL: $*" >&2; exit 1; }

mkdir -p "$T/dirmoe_run" "$T/switch_run"
"$PY" "$SRC/tests/cli/make_routing_h5.py" "$T/dirmoe_run/routing.h5" --router dirmoe --skew 0 --seed 1 > "$T/a.json"
"$PY" "$SRC/tests/cli/make_routing_h5.py" "$T/switch_run/routing.h5" --router topk --skew 4 --seed 2 > "$T/b.json"

"$BIN/dirmoe-analyze" compare "$T/dirmoe_run/routing.h5" "$T/switch_run/routing.h5" --out "$T/cmp/compare.md"
[ -s "$T/cmp/compare.md" ] || fail "no compare.md"
[ -s "$T/cmp/compare.json" ] || fail "no compare.json"
grep -q "| $T/dirmoe_run/routing.h5 | dirmoe |" "$T/cmp/compare.md" || fail "dirmoe row missing"
grep -q "| $T/switch_run/routing.h5 | topk |" "$T/cmp/compare.md" || fail "topk row missing"
# layer-averaged load max/mean in the JSON equals the mean of what the writer put in
"$PY" - "$T/cmp/compare.json" "$T/a.json" "$T/b.json" <<'PYEOF'
import json, sys
cmp = json.load(open(sys.argv[1]))
for run, exp_path in zip(cmp["runs"], sys.argv[2:]):
    exp = json.load(open(exp_path))["layers"]
    want = sum(l["load_max_over_mean"] for l in exp) / len(exp)
    got = run["mean"]["load_max_over_mean"]
    assert abs(got - want) < 1e-9, (got, want)
    assert abs(run["mean"]["active_experts"] - 1.0) < 1e-12
    assert abs(run["mean"]["token_simpson"] - 1.0) < 1e-12
    assert len(run["layers"]) == 2
assert cmp["runs"][1]["mean"]["load_max_over_mean"] > cmp["runs"][0]["mean"]["load_max_over_mean"]
# a layer is flagged exactly when the load max/mean the writer built exceeds the default threshold 2
for run, exp_path in zip(cmp["runs"], sys.argv[2:]):
    exp = json.load(open(exp_path))["layers"]
    want = [i for i, l in enumerate(exp) if l["load_max_over_mean"] > 2.0]
    assert run["load_flagged_layers"] == want and run["load_threshold"] == 2.0, (run["load_flagged_layers"], want)
assert cmp["runs"][1]["load_flagged_layers"], "the skewed file should have a flagged layer"
PYEOF
grep -q "load flagged layers" "$T/cmp/compare.md" || fail "compare.md lacks the load-flag column"
# the per-file report says it in words and in JSON; a threshold above every layer's load flags none
"$BIN/dirmoe-analyze" report "$T/switch_run/routing.h5" --out "$T/rep"
grep -q "Load concentrated" "$T/rep/report.md" || fail "report.md does not flag the skewed layers"
"$PY" -c "import json,sys; j=json.load(open('$T/rep/report.json')); assert j['load_ok'] is False and j['load_flagged_layers'], j['load_flagged_layers']"
"$BIN/dirmoe-analyze" report "$T/switch_run/routing.h5" --out "$T/rep100" --load-threshold 100
grep -q "no layer's load max/mean exceeds 100" "$T/rep100/report.md" || fail "threshold 100 should flag nothing"
if "$BIN/dirmoe-analyze" report "$T/switch_run/routing.h5" --out "$T/rep0" --load-threshold 0.5 2> "$T/err.txt"; then
  fail "--load-threshold 0.5 accepted"
fi
grep -q -- "--load-threshold" "$T/err.txt" || fail "bad threshold message: $(cat "$T/err.txt")"
# stdout form
"$BIN/dirmoe-analyze" compare "$T/dirmoe_run/routing.h5" | grep -q "Routing comparison" || fail "stdout table"

expect_refusal() {  # file, words the message must contain...
  local file=$1; shift
  if "$BIN/dirmoe-analyze" compare "$T/dirmoe_run/routing.h5" "$file" > "$T/out.txt" 2> "$T/err.txt"; then
    fail "compare accepted $file"
  fi
  grep -qF "$file" "$T/err.txt" || fail "message does not name $file: $(cat "$T/err.txt")"
  for w in "$@"; do grep -qF "$w" "$T/err.txt" || fail "message lacks '$w': $(cat "$T/err.txt")"; done
  echo "refused as expected: $(cat "$T/err.txt")"
}

"$PY" -c "import h5py, numpy; f = h5py.File('$T/foreign.h5', 'w'); f['x'] = numpy.arange(10)"
expect_refusal "$T/foreign.h5" "not a dirmoe routing file" "format_version"

size=$(stat -c %s "$T/switch_run/routing.h5")
head -c $((size / 2)) "$T/switch_run/routing.h5" > "$T/cut.h5"
expect_refusal "$T/cut.h5" "truncated"

echo "just text" > "$T/text.h5"
expect_refusal "$T/text.h5" "not an HDF5 file"

expect_refusal "$T/missing.h5" "no such file"

"$PY" - "$T/hole.h5" "$T/dirmoe_run/routing.h5" <<'PYEOF'
import shutil, sys, h5py
shutil.copy(sys.argv[2], sys.argv[1])
with h5py.File(sys.argv[1], "a") as f:
    del f["layer_01/domain_expert_tokens"]
PYEOF
expect_refusal "$T/hole.h5" "missing dataset /layer_01/domain_expert_tokens"
echo "OK"
