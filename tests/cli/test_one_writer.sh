#!/usr/bin/env bash
# One writer per output, and a hung peer named within a bounded time (docs/reliability.md):
#   1. a second dirmoe-train on the same --out is refused at once, naming the directory and the holder,
#      and the first run's metrics.jsonl and summary.json equal those of a run that was alone;
#      dirmoe-data build and dirmoe-eval refuse a second writer of their outputs the same way
#   2. a lock held by a SIGKILLed run does not block the next one (--resume continues it)
#   3. a SIGSTOPped peer of a 2-process run ends the other rank within train.collective_timeout_s with a
#      message naming the collective, the step and the rank that did not arrive (exit code 4)
#   4. torchrun --max-restarts 1 with --resume: a worker SIGKILLed mid-run is restarted with its peer, the
#      job resumes from the last checkpoint and finishes with the metrics of an uninterrupted run
set -uo pipefail
. "$(dirname "$0")/common.sh"
. "$(dirname "$0")/parallel_common.sh"
on_exit() { local p; for p in $(procs_of "$TMP"); do kill -CONT "$p"; kill -KILL "$p"; done 2>/dev/null; }
export OMP_NUM_THREADS=1

fixture_data "$TMP/data" --split 0.7,0.15,0.15 || fail "fixture data build"
TRAIN=("$BIN/dirmoe-train" --config "$SRC/experiments/configs/tiny_switch.json" --set data.dir="$TMP/data" "${PAR[@]}")
LONG=(--set train.max_steps=400 --set train.log_every=10 --set train.eval_every=100 --set train.ckpt_every=50)

procs_of() {  # procs_of TEXT: pids of dirmoe-train processes whose command line contains TEXT (no procps needed)
  local d
  for d in /proc/[0-9]*; do
    tr '\0' ' ' < "$d/cmdline" 2>/dev/null | grep -q "dirmoe-train.*$1" && echo "${d#/proc/}"
  done
}

wait_for_file() {  # wait_for_file PATH SECONDS: until PATH exists and is not empty
  local i
  for ((i = 0; i < $2 * 10; ++i)); do [ -s "$1" ] && return 0; sleep 0.1; done
  return 1
}

# 1. A second writer of the same run directory.
"${TRAIN[@]}" "${LONG[@]}" --set train.batch_size=8 --out "$TMP/first" 2>"$TMP/first.err" &
first=$!
wait_for_file "$TMP/first/.dirmoe.lock" 60 || fail "the first run took no lock"
start=$(date +%s%N)
if "${TRAIN[@]}" "${LONG[@]}" --set train.batch_size=8 --out "$TMP/first" 2>"$TMP/second.err"; then
  fail "a second dirmoe-train on the same --out was accepted"
fi
took=$(( ($(date +%s%N) - start) / 1000000 ))
grep -q "$TMP/first is being written by another process: pid $first on host" "$TMP/second.err" \
  || { cat "$TMP/second.err"; fail "the refusal does not name the directory and the holder"; }
grep -q "dirmoe-train --config" "$TMP/second.err" || fail "the refusal does not name the holder's command"
echo "ok: second writer refused in ${took} ms: $(grep -o 'is being written.*' "$TMP/second.err" | cut -c1-160)"
wait "$first" || { tail "$TMP/first.err"; fail "the first run failed"; }
"${TRAIN[@]}" "${LONG[@]}" --set train.batch_size=8 --out "$TMP/alone" 2>/dev/null || fail "the run alone failed"
"$PY" - "$TMP/first" "$TMP/alone" <<'PY' || fail "the first run's outputs differ from a run that was alone"
import json, sys
a, b = sys.argv[1:3]
def lines(d):
    out = []
    for l in open(f"{d}/metrics.jsonl"):
        x = json.loads(l); x.pop("tokens_per_s"); out.append(x)
    return out
assert lines(a) == lines(b), "metrics.jsonl differs"
sa, sb = (json.load(open(f"{d}/summary.json")) for d in (a, b))
for s in (sa, sb): s.pop("tokens_per_s")
assert sa == sb, "summary.json differs"
print(f"ok: the first run's metrics.jsonl ({len(lines(a))} lines) and summary.json equal those of a run alone")
PY

# The other writers: dirmoe-data build into a directory and dirmoe-eval into a result file that another
# process holds (flock(1) stands in for it: a real build or evaluation of the fixture is over too soon).
mkdir -p "$TMP/data2"
exec 8>"$TMP/data2/.dirmoe.lock"
flock -n 8 || fail "could not take the data lock for the test"
if "$BIN/dirmoe-data" build --quiet --out "$TMP/data2" --source "$DATA_SRC/tree" --vocab-size 600 --seed 3 2>"$TMP/data2.err"; then
  fail "a second dirmoe-data build into the same --out was accepted"
fi
grep -q "$TMP/data2 is being written by another process" "$TMP/data2.err" || { cat "$TMP/data2.err"; fail "data refusal"; }
[ ! -e "$TMP/data2/manifest.json" ] || fail "the refused data build wrote into the directory"
exec 8>&-
exec 9>"$TMP/alone/.eval.json.lock"
flock -n 9 || fail "could not take the eval lock for the test"
if "$BIN/dirmoe-eval" --checkpoint "$TMP/alone" --tasks heldout_cloze --set eval.heldout_examples=4 \
     --out "$TMP/alone/eval.json" 2>"$TMP/eval.err"; then
  fail "dirmoe-eval wrote a result another process holds"
fi
grep -q "$TMP/alone/eval.json is being written by another process" "$TMP/eval.err" || { cat "$TMP/eval.err"; fail "eval refusal"; }
exec 9>&-
echo "ok: dirmoe-data build and dirmoe-eval refuse a second writer of their outputs"

# 2. A SIGKILLed holder leaves no stale lock: the next run takes it and resumes.
"${TRAIN[@]}" "${LONG[@]}" --set train.batch_size=8 --out "$TMP/killed" 2>/dev/null &
killed=$!
wait_for_file "$TMP/killed/checkpoints/step_00000050.ckpt" 120 || fail "no checkpoint before the kill"
kill -KILL "$killed"; wait "$killed" 2>/dev/null
"${TRAIN[@]}" "${LONG[@]}" --set train.batch_size=8 --out "$TMP/killed" --resume 2>"$TMP/killed.err" \
  || { tail "$TMP/killed.err"; fail "the run after a SIGKILLed holder was refused or failed"; }
grep -q "resumed from" "$TMP/killed.err" || fail "it did not resume"
echo "ok: a SIGKILLed holder's lock does not block the next run"

if [ ! -x "$TORCHRUN" ]; then echo "SKIP: $TORCHRUN not found: the 2-process parts are not checked"; exit 0; fi

# 3. A SIGSTOPped peer: the surviving rank ends within the timeout, naming what it waited for.
TIMEOUT_S=6
OMP_NUM_THREADS=1 "$TORCHRUN" --standalone --nnodes 1 --nproc-per-node 2 --no-python "${TRAIN[@]}" \
  --set train.max_steps=100000 --set train.log_every=10 --set train.eval_every=0 --set train.ckpt_every=0 \
  --set train.stats_every=0 --set train.batch_size=4 --set train.collective_timeout_s=$TIMEOUT_S --out "$TMP/hang" \
  >"$TMP/hang.err" 2>&1 &
job=$!
wait_for_file "$TMP/hang/metrics.jsonl" 120 || { cat "$TMP/hang.err"; fail "the 2-process run did not start"; }
peer="" survivor=""
for p in $(procs_of "$TMP/hang"); do
  env=$(tr '\0' '\n' < "/proc/$p/environ" 2>/dev/null)
  grep -qx "RANK=1" <<<"$env" && peer=$p
  grep -qx "RANK=0" <<<"$env" && survivor=$p
done
[ -n "$peer" ] && [ -n "$survivor" ] || fail "the two ranks were not found"
kill -STOP "$peer"
stopped=$(date +%s)
# rank 0 must say what it waited for and end, within the timeout and the few seconds its report takes
while kill -0 "$survivor" 2>/dev/null && (( $(date +%s) - stopped < TIMEOUT_S + 60 )); do sleep 0.2; done
took=$(( $(date +%s) - stopped ))
kill -0 "$survivor" 2>/dev/null && fail "rank 0 still runs ${took} s after its peer stopped (timeout ${TIMEOUT_S} s)"
kill -KILL "$peer" 2>/dev/null
wait "$job"; rc=$?
[ "$rc" -ne 0 ] || fail "torchrun exited 0 although rank 1 hung"
grep -q "collective timeout: rank 0 waited more than train.collective_timeout_s = $TIMEOUT_S s" "$TMP/hang.err" \
  || { tail -n 30 "$TMP/hang.err"; fail "rank 0 did not report the timeout"; }
grep -q "ranks that did not: rank 1 (last seen at step" "$TMP/hang.err" || { tail -n 30 "$TMP/hang.err"; fail "rank 1 not named"; }
(( took <= TIMEOUT_S + 15 )) || fail "rank 0 ended ${took} s after its peer stopped (timeout ${TIMEOUT_S} s)"
echo "ok: rank 0 ended ${took} s after its peer stopped: $(grep -o 'collective timeout.*' "$TMP/hang.err" | head -1 | cut -c1-260)"

# 4. torchrun --max-restarts 1 with --resume: SIGKILL rank 1 after the step-50 checkpoint; the restarted
# job resumes from it and ends as an uninterrupted 2-process run does.
RESTART=(--set train.max_steps=200 --set train.log_every=10 --set train.eval_every=100 --set train.ckpt_every=50
         --set train.batch_size=4)
OMP_NUM_THREADS=1 "$TORCHRUN" --standalone --nnodes 1 --nproc-per-node 2 --no-python "${TRAIN[@]}" "${RESTART[@]}" \
  --out "$TMP/whole" >"$TMP/whole.err" 2>&1 || { tail "$TMP/whole.err"; fail "the uninterrupted 2-process run"; }
OMP_NUM_THREADS=1 "$TORCHRUN" --standalone --nnodes 1 --nproc-per-node 2 --max-restarts 1 --no-python "${TRAIN[@]}" \
  "${RESTART[@]}" --out "$TMP/restarted" --resume >"$TMP/restarted.err" 2>&1 &
job=$!
wait_for_file "$TMP/restarted/checkpoints/step_00000050.ckpt" 120 || fail "no checkpoint before the kill"
for p in $(procs_of "$TMP/restarted"); do
  tr '\0' '\n' < "/proc/$p/environ" 2>/dev/null | grep -qx "RANK=1" && kill -KILL "$p"
done
wait "$job" || { tail -n 30 "$TMP/restarted.err"; fail "the job did not finish after the restart"; }
grep -q "resumed from .*step_" "$TMP/restarted.err" || { tail -n 30 "$TMP/restarted.err"; fail "the restart did not resume"; }
"$PY" - "$TMP/whole" "$TMP/restarted" <<'PY' || fail "the restarted job's metrics differ from the uninterrupted run's"
import json, sys
a, b = ({json.loads(l)["step"]: json.loads(l) for l in open(f"{d}/metrics.jsonl")} for d in sys.argv[1:3])
assert sorted(a) == sorted(b), (sorted(a), sorted(b))
worst = max(abs(a[s]["lm_loss"] - b[s]["lm_loss"]) / a[s]["lm_loss"] for s in a)
assert worst < 2e-5, worst
sa, sb = (json.load(open(f"{d}/summary.json")) for d in sys.argv[1:3])
assert sa["status"] == sb["status"] == "finished" and sa["steps"] == sb["steps"] == 200
assert abs(sa["final_val_loss"] - sb["final_val_loss"]) <= 2e-5 * sa["final_val_loss"], (sa["final_val_loss"], sb["final_val_loss"])
print(f"ok: restarted under --max-restarts 1, resumed and finished as the uninterrupted run (worst lm_loss {worst:.1e})")
PY
