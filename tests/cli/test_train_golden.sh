#!/usr/bin/env bash
# dirmoe-train's outputs, value for value, against files committed from an earlier revision
# (tests/data/golden/, written by this script with DIRMOE_GOLDEN_WRITE=1 at the revision named in
# tests/data/golden/README.md): 20 steps of DirMoE and of Switch in one process, and of Switch in two
# processes over Gloo, on the fixture corpus. metrics.jsonl and summary.json must hold the same keys and
# the same values (numbers within 1e-5 relative: the bound covers another CPU's kernels, not a change of
# formula), timing fields and the git revision aside. A refactoring of the training loop must pass it
# unchanged; a deliberate change of an output regenerates the files and says why in its commit.
set -uo pipefail
. "$(dirname "$0")/common.sh"
. "$(dirname "$0")/parallel_common.sh"
GOLDEN="$SRC/tests/data/golden"

fixture_data "$TMP/data" --split 0.7,0.15,0.15 || fail "fixture data build"
EXTRA=(--set train.grad_norm_terms_every=5)

# DirMoE with the recipe the golden files were written with (the defaults of 1d418fe; docs/dirmoe.md
# H8/H11 changed them since): the comparison is of the training loop, not of the recipe.
run_single dirmoe "$TMP/dirmoe" "${EXTRA[@]}" --set router.dirmoe.usage_kl=10 --set router.dirmoe.lambda_sparsity=10 \
  --set router.dirmoe.aux_detach_input=false
run_single switch "$TMP/switch" "${EXTRA[@]}"
if [ -x "$TORCHRUN" ]; then
  run_pair switch 1 "$TMP/switch_2proc" "${EXTRA[@]}"
else
  echo "note: $TORCHRUN not found: the 2-process run is not checked"
fi

if [ -n "${DIRMOE_GOLDEN_WRITE:-}" ]; then
  for run in dirmoe switch switch_2proc; do
    [ -d "$TMP/$run" ] || continue
    mkdir -p "$GOLDEN/$run"
    cp "$TMP/$run/metrics.jsonl" "$TMP/$run/summary.json" "$GOLDEN/$run/"
  done
  sha256sum "$TMP/data/tokenizer.model" | cut -d' ' -f1 > "$GOLDEN/tokenizer.sha256"
  echo "golden files written to $GOLDEN"
  exit 0
fi

want=$(cat "$GOLDEN/tokenizer.sha256")
have=$(sha256sum "$TMP/data/tokenizer.model" | cut -d' ' -f1)
[ "$want" = "$have" ] || fail "the fixture corpus's tokenizer differs from the one the golden files were made with ($have vs $want): the comparison below would not be of the same inputs; see tests/data/golden/README.md"

"$PY" - "$GOLDEN" "$TMP" <<'PY' || fail "dirmoe-train's outputs differ from the golden files"
import json, math, os, sys
golden, tmp = sys.argv[1:3]
TIMING = {"tokens_per_s", "git_revision"}
REL = 1e-5

def same(a, b, where, problems):
    if isinstance(a, dict) and isinstance(b, dict):
        ka, kb = set(a) - TIMING, set(b) - TIMING
        if ka != kb:
            problems.append(f"{where}: keys {sorted(ka ^ kb)} only on one side")
        for k in sorted(ka & kb):
            same(a[k], b[k], f"{where}.{k}", problems)
    elif isinstance(a, list) and isinstance(b, list):
        if len(a) != len(b):
            problems.append(f"{where}: {len(a)} vs {len(b)} items")
        for i, (x, y) in enumerate(zip(a, b)):
            same(x, y, f"{where}[{i}]", problems)
    elif isinstance(a, bool) or isinstance(b, bool) or isinstance(a, str) or a is None or b is None:
        if a != b:
            problems.append(f"{where}: {a!r} vs {b!r}")
    elif isinstance(a, (int, float)) and isinstance(b, (int, float)):
        if isinstance(a, int) and isinstance(b, int):
            ok = a == b
        else:
            ok = math.isclose(a, b, rel_tol=REL, abs_tol=1e-12)
        if not ok:
            problems.append(f"{where}: {a!r} vs {b!r}")
    elif a != b:
        problems.append(f"{where}: {a!r} vs {b!r}")

checked = 0
problems = []
for run in ("dirmoe", "switch", "switch_2proc"):
    if not os.path.isdir(f"{tmp}/{run}"):
        continue
    want = [json.loads(l) for l in open(f"{golden}/{run}/metrics.jsonl")]
    have = [json.loads(l) for l in open(f"{tmp}/{run}/metrics.jsonl")]
    same(want, have, f"{run}/metrics.jsonl", problems)
    same(json.load(open(f"{golden}/{run}/summary.json")), json.load(open(f"{tmp}/{run}/summary.json")),
         f"{run}/summary.json", problems)
    checked += 1
for p in problems[:40]:
    print("DIFF", p)
assert not problems, f"{len(problems)} differences"
print(f"ok: {checked} runs: metrics.jsonl and summary.json equal the golden files")
PY
