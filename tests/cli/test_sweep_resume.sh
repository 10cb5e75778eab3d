#!/usr/bin/env bash
# The sweep scripts on the fixture corpus: compare_routers.sh killed (SIGKILL, whole process group)
# while its second run trains, then re-run: the finished run is not redone (its files are
# byte-identical), the interrupted one resumes from its checkpoint, and the table lists both. A third
# run redoes nothing; a changed step budget is refused. ablate_dirmoe.sh writes a variant table.
set -uo pipefail
. "$(dirname "$0")/common.sh"
on_exit() { [ -n "${sweep_pid:-}" ] && kill -KILL -- -"$sweep_pid" 2>/dev/null; }
export DIRMOE_BIN_DIR="$BIN" DIRMOE_PYTHON="$PY"

fixture_data "$TMP/data" --split 0.6,0.2,0.2 >"$TMP/data.log" 2>&1 || { cat "$TMP/data.log" >&2; fail "data build"; }

# A model small enough that a run takes seconds, with a checkpoint every 10 steps.
COMMON=(--scale tiny --seeds 1 --jobs 1 --data "$TMP/data" --analyze-tokens 2000
        --eval-set eval.validation_tokens=2000 --eval-set eval.heldout_examples=10
        --set model.d_model=32 --set model.n_layers=1 --set model.n_heads=2 --set model.n_kv_heads=1
        --set model.d_ff=64 --set model.n_experts=4 --set train.batch_size=2
        --set train.log_every=5 --set train.eval_every=50 --set train.eval_batches=1 --set train.ckpt_every=10)
OUT="$TMP/sweep"
sweep() { "$SRC/experiments/sweeps/compare_routers.sh" "${COMMON[@]}" --out "$OUT" "$@"; }

# 1. Start the sweep in its own process group; kill all of it once the second run has a checkpoint.
setsid bash -c "$(declare -f sweep); $(declare -p COMMON SRC OUT); sweep --routers 'switch dirmoe' --steps 400" \
  >"$TMP/first.log" 2>&1 &
sweep_pid=$!
for _ in $(seq 1 1200); do
  ls "$OUT"/dirmoe/seed1/checkpoints/step_*.ckpt >/dev/null 2>&1 && break
  kill -0 "$sweep_pid" 2>/dev/null || break
  sleep 0.1
done
ls "$OUT"/dirmoe/seed1/checkpoints/step_*.ckpt >/dev/null 2>&1 || { cat "$TMP/first.log"; fail "second run never checkpointed"; }
kill -KILL -- -"$sweep_pid" 2>/dev/null || fail "the sweep had already ended; the interruption was not tested"
wait "$sweep_pid" 2>/dev/null
sweep_pid=""
grep -q '"status": "finished"' "$OUT/switch/seed1/summary.json" || fail "first run not finished before the kill"
[ -f "$OUT/dirmoe/seed1/eval.json" ] && fail "the interrupted run has an eval.json"
grep -q '"status": "finished"' "$OUT/dirmoe/seed1/summary.json" 2>/dev/null && fail "the killed run claims to be finished"
finished_files=(summary.json metrics.jsonl eval.json analysis/routing.h5 analysis/report.json)
(cd "$OUT/switch/seed1" && sha256sum "${finished_files[@]}") > "$TMP/switch.sha" || fail "first run's outputs incomplete"
echo "ok: killed while dirmoe trained ($(ls "$OUT"/dirmoe/seed1/checkpoints/ | tr '\n' ' '))"

# 2. Re-run: switch kept byte for byte, dirmoe resumed and finished, the table lists both.
sweep --routers 'switch dirmoe' --steps 400 >"$TMP/second.log" 2>&1 || { cat "$TMP/second.log"; fail "re-run"; }
(cd "$OUT/switch/seed1" && sha256sum -c --quiet "$TMP/switch.sha") || fail "the finished run was redone"
grep -q "\[switch seed 1\] trained (kept)" "$TMP/second.log" || { cat "$TMP/second.log"; fail "no 'kept' line"; }
grep -q "\[switch seed 1\] eval" "$TMP/second.log" && fail "finished eval redone"
grep -q "resumed from .*step_" "$OUT/dirmoe/seed1/train.log" || { cat "$OUT/dirmoe/seed1/train.log"; fail "dirmoe not resumed"; }
"$PY" - "$OUT" <<'PYEOF' || fail "results after the re-run"
import csv, json, sys
out = sys.argv[1]
s = json.load(open(f"{out}/dirmoe/seed1/summary.json"))
assert s["status"] == "finished" and s["steps"] == 400, s["status"]
steps = [json.loads(l)["step"] for l in open(f"{out}/dirmoe/seed1/metrics.jsonl")]
assert steps == sorted(set(steps)) and steps[-1] == 400, "metric lines duplicated or missing after resume"
rows = {r["router"]: r for r in csv.DictReader(open(f"{out}/results.csv"))}
assert set(rows) == {"switch", "dirmoe"}, rows.keys()
for r in rows.values():
    assert r["seeds"] == "1" and r["val_loss_mean"] and r["ek_mean"], r
print("ok: re-run finished the job:", {k: round(float(v["val_loss_mean"]), 3) for k, v in rows.items()})
PYEOF

# 3. A third run redoes nothing.
sweep --routers 'switch dirmoe' --steps 400 >"$TMP/third.log" 2>&1 || { cat "$TMP/third.log"; fail "third run"; }
grep -E "\] (train|resume|eval|analyze)$" "$TMP/third.log" && fail "work redone on a complete sweep"
echo "ok: complete sweep re-run does nothing"

# 4. Another step budget into the same --out is refused, naming the directory.
if sweep --routers switch --steps 50 >"$TMP/budget.log" 2>&1; then fail "a different budget was mixed in"; fi
grep -q "max_steps 400 but 50" "$TMP/budget.log" || { cat "$TMP/budget.log"; fail "budget message"; }
echo "ok: $(grep -m1 'max_steps' "$TMP/budget.log")"

# 5. The ablation script: two variants, a table labelled by variant.
"$SRC/experiments/sweeps/ablate_dirmoe.sh" "${COMMON[@]}" --out "$TMP/ablate" --variants "chosen h5_no_usage" --steps 10 \
  >"$TMP/ablate.log" 2>&1 || { cat "$TMP/ablate.log"; fail "ablate_dirmoe.sh"; }
head -1 "$TMP/ablate/results.md" | grep -q "^| variant | seeds |" || { cat "$TMP/ablate/results.md"; fail "ablation table"; }
grep -q "^| h5_no_usage | 1 |" "$TMP/ablate/results.md" || fail "h5_no_usage row"
grep -q '"usage_kl": 0' "$TMP/ablate/h5_no_usage/seed1/config.json" || fail "variant setting not applied"
if "$SRC/experiments/sweeps/ablate_dirmoe.sh" --variants nonsense >"$TMP/bad.log" 2>&1; then fail "unknown variant accepted"; fi
grep -q "unknown variant 'nonsense'" "$TMP/bad.log" || fail "unknown-variant message"
echo "ok: ablate_dirmoe.sh"
