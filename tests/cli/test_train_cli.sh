#!/usr/bin/env bash
# dirmoe-train end to end on the fixture corpus: errors, loss going down, SIGTERM stop, exact resume
# after SIGKILL, a corrupt newest checkpoint skipped on resume, and 2-process Gloo = 1 process.
set -uo pipefail
. "$(dirname "$0")/common.sh"
on_exit() { kill $(jobs -p) 2>/dev/null; }

fixture_data "$TMP/data" --split 0.7,0.15,0.15 || fail "fixture data build"

# A small model that still runs every path (attention, MoE, router schedules) in well under a second a step.
TINY=(--set data.dir="$TMP/data" --set model.d_model=32 --set model.n_layers=2 --set model.n_heads=2
      --set model.n_kv_heads=1 --set model.d_ff=64 --set model.seq_len=32 --set model.n_experts=4
      --set train.batch_size=4 --set train.threads=1 --set train.log_every=1 --set train.eval_batches=2
      --set train.device=cpu)

# 1. A missing data directory names the fix.
if "$BIN/dirmoe-train" --config "$SRC/experiments/configs/tiny_switch.json" --out "$TMP/nodata" \
     --set data.dir="$TMP/none" 2>"$TMP/err"; then fail "missing data dir accepted"; fi
grep -q "dirmoe-data build" "$TMP/err" || { cat "$TMP/err"; fail "missing-data message"; }
echo "ok: missing data dir -> $(head -c 160 "$TMP/err")"

# 2. Loss goes down; config.json, metrics.jsonl, summary.json are written.
"$BIN/dirmoe-train" --config "$SRC/experiments/configs/tiny_switch.json" --out "$TMP/down" "${TINY[@]}" \
  --set train.max_steps=40 --set train.eval_every=20 --set train.ckpt_every=20 --set train.lr=1e-2 \
  2>"$TMP/down.err" || { cat "$TMP/down.err"; fail "tiny run"; }
for f in config.json metrics.jsonl summary.json checkpoints/best.ckpt; do [ -s "$TMP/down/$f" ] || fail "missing $f"; done
"$PY" - "$TMP/down" <<'PY' || fail "loss did not go down"
import json, sys
d = sys.argv[1]
m = [json.loads(l) for l in open(f"{d}/metrics.jsonl")]
first, last = sum(x["lm_loss"] for x in m[:5]) / 5, sum(x["lm_loss"] for x in m[-5:]) / 5
print(f"lm_loss {first:.3f} -> {last:.3f}")
assert last < first - 0.3, (first, last)
s = json.load(open(f"{d}/summary.json"))
assert s["status"] == "finished" and s["final_val_loss"] is not None
assert json.load(open(f"{d}/config.json"))["config"]["model"]["vocab_size"] > 0
PY

# 3. SIGTERM: finish the step, write a checkpoint, exit 0.
"$BIN/dirmoe-train" --config "$SRC/experiments/configs/tiny_dirmoe.json" --out "$TMP/term" "${TINY[@]}" \
  --set train.max_steps=100000 --set train.eval_every=0 --set train.ckpt_every=1000 2>"$TMP/term.err" &
pid=$!
for _ in $(seq 1 600); do [ -s "$TMP/term/metrics.jsonl" ] && break; sleep 0.05; done
sleep 0.3
kill -TERM $pid
wait $pid; rc=$?
[ $rc -eq 0 ] || { cat "$TMP/term.err"; fail "SIGTERM exit code $rc"; }
grep -q '"status": "stopped"' "$TMP/term/summary.json" || fail "summary status after SIGTERM"
ls "$TMP/term/checkpoints"/step_*.ckpt >/dev/null 2>&1 || fail "no checkpoint after SIGTERM"
echo "ok: SIGTERM -> $(tail -n 1 "$TMP/term.err")"

# 4. Exact resume after SIGKILL (DirMoE: Gumbel/Gamma noise, schedules, sampler, AdamW moments).
RES=("${TINY[@]}" --set train.max_steps=60 --set train.eval_every=10 --set train.ckpt_every=5 --set model.d_model=64
     --set model.seq_len=64 --set train.batch_size=8)
"$BIN/dirmoe-train" --config "$SRC/experiments/configs/tiny_dirmoe.json" --out "$TMP/full" "${RES[@]}" 2>"$TMP/full.err" \
  || { cat "$TMP/full.err"; fail "uninterrupted run"; }
"$BIN/dirmoe-train" --config "$SRC/experiments/configs/tiny_dirmoe.json" --out "$TMP/killed" "${RES[@]}" 2>/dev/null &
pid=$!
for _ in $(seq 1 2000); do
  [ -e "$TMP/killed/checkpoints/step_00000015.ckpt" ] && break
  kill -0 $pid 2>/dev/null || break
  sleep 0.01
done
kill -0 $pid 2>/dev/null || fail "the run ended before it could be killed; make the resume test's run longer"
kill -KILL $pid; wait $pid 2>/dev/null
killed_at=$(wc -l <"$TMP/killed/metrics.jsonl")
"$BIN/dirmoe-train" --config "$SRC/experiments/configs/tiny_dirmoe.json" --out "$TMP/killed" "${RES[@]}" --resume \
  2>"$TMP/resume.err" || { cat "$TMP/resume.err"; fail "resume"; }
grep -q "resumed from" "$TMP/resume.err" || fail "did not resume"
"$PY" - "$TMP/full" "$TMP/killed" "$killed_at" <<'PY' || fail "resumed run differs"
import json, sys
a = [json.loads(l) for l in open(f"{sys.argv[1]}/metrics.jsonl")]
b = [json.loads(l) for l in open(f"{sys.argv[2]}/metrics.jsonl")]
assert [x["step"] for x in a] == [x["step"] for x in b], "step lists differ"
bad = [(x["step"], x["loss"], y["loss"]) for x, y in zip(a, b) if x["loss"] != y["loss"] or x["grad_norm"] != y["grad_norm"]]
assert not bad, f"first differences: {bad[:3]}"
sa, sb = (json.load(open(f"{d}/summary.json")) for d in sys.argv[1:3])
assert sa["final_val_loss"] == sb["final_val_loss"]
print(f"ok: killed after {sys.argv[3]} logged steps; all {len(a)} steps bit-identical after resume")
PY

# 5. A corrupt newest checkpoint is skipped with a warning; resume uses the one before.
newest=$(ls "$TMP/killed/checkpoints"/step_*.ckpt | tail -n 1)
printf 'garbage' | dd of="$newest" bs=1 seek=200 conv=notrunc 2>/dev/null
"$BIN/dirmoe-train" --config "$SRC/experiments/configs/tiny_dirmoe.json" --out "$TMP/killed" "${RES[@]}" --resume \
  2>"$TMP/corrupt.err" || { cat "$TMP/corrupt.err"; fail "resume past a corrupt checkpoint"; }
grep -q "CRC-32 mismatch" "$TMP/corrupt.err" || { cat "$TMP/corrupt.err"; fail "corrupt checkpoint not reported"; }
echo "ok: corrupt checkpoint -> $(grep -m1 CRC "$TMP/corrupt.err" | head -c 200)"

# 6. Two processes on Gloo equal one process with the same global batch.
TORCHRUN="$SRC/.venv/bin/torchrun"
if [ ! -x "$TORCHRUN" ]; then echo "SKIP: 2-process test: $TORCHRUN not found"; echo "ok"; exit 0; fi
DP=("${TINY[@]}" --set train.max_steps=12 --set train.eval_every=0 --set train.ckpt_every=6
    --set router.topk.balance_coef=0.01 --set train.threads=1)
"$BIN/dirmoe-train" --config "$SRC/experiments/configs/tiny_switch.json" --out "$TMP/one" "${DP[@]}" \
  --set train.batch_size=8 2>"$TMP/one.err" || { cat "$TMP/one.err"; fail "1-process run"; }
OMP_NUM_THREADS=1 "$TORCHRUN" --standalone --nnodes 1 --nproc-per-node 2 --no-python \
  "$BIN/dirmoe-train" --config "$SRC/experiments/configs/tiny_switch.json" --out "$TMP/two" "${DP[@]}" \
  --set train.batch_size=4 >"$TMP/two.out" 2>&1 || { tail -n 40 "$TMP/two.out"; fail "2-process run"; }
"$PY" - "$TMP/one" "$TMP/two" <<'PY' || fail "2-process run differs from 1-process"
import json, sys
a = [json.loads(l) for l in open(f"{sys.argv[1]}/metrics.jsonl")]
b = [json.loads(l) for l in open(f"{sys.argv[2]}/metrics.jsonl")]
assert len(a) == len(b) == 12, (len(a), len(b))
worst = 0.0
for x, y in zip(a, b):
    assert x["tokens"] == y["tokens"]
    rel = abs(x["lm_loss"] - y["lm_loss"]) / abs(x["lm_loss"])
    worst = max(worst, rel)
    assert rel < 2e-3, (x["step"], x["lm_loss"], y["lm_loss"])
print(f"ok: 2-process Gloo vs 1 process, 12 steps, worst relative lm_loss difference {worst:.2e}")
PY
echo "ok"
