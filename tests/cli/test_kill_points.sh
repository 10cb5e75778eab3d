#!/usr/bin/env bash
# Interrupted work never passes for finished work: dirmoe-data, dirmoe-train, dirmoe-eval and
# dirmoe-analyze are SIGKILLed after several delays on the fixture corpus; after each kill every
# output that exists must be complete (data: `dirmoe-data verify`; checkpoints: magic, lengths and
# CRC-32 checked by an independent Python reader; eval JSON and analyze reports parse; routing.h5
# is read back by `dirmoe-analyze report`), and rerunning the same command (train: with --resume)
# finishes the job with the same result as an uninterrupted run. Exact resume is checked in
# test_train_cli.sh.
#
# KILL_DELAYS (seconds, space separated) sets the kill moments; the default is a quick set for
# `make test`, test_kill_points_slow.sh loops over many.
set -uo pipefail
. "$(dirname "$0")/common.sh"
on_exit() { kill -KILL $(jobs -p) 2>/dev/null; }
export OMP_NUM_THREADS=1
read -r -a DELAYS <<<"${KILL_DELAYS:-0.1 0.4}"

# Runs "$@" in the background and SIGKILLs it after $delay seconds; returns 0 if the kill ended
# it, 1 if it had already exited by itself (then its exit code is in $run_rc). A process that has
# exited but is not yet reaped still accepts the signal, so the exit status decides.
kill_after() {
  local delay=$1; shift
  "$@" >/dev/null 2>&1 &
  local pid=$!
  sleep "$delay"
  kill -KILL "$pid" 2>/dev/null
  wait "$pid" 2>/dev/null; run_rc=$?
  [ "$run_rc" -eq 137 ]
}

# Every *.ckpt must be a whole checkpoint (layout of lib/include/dirmoe/train/checkpoint_file.h).
check_checkpoints() {
  "$PY" - "$1" <<'PY'
import json, pathlib, struct, sys, zlib
for p in sorted(pathlib.Path(sys.argv[1]).glob("*.ckpt")):
    b = p.read_bytes()
    assert b[:8] == b"DMOECKPT", f"{p}: no magic"
    (n,) = struct.unpack_from("<Q", b, 12)
    json.loads(b[20:20 + n])
    (m,) = struct.unpack_from("<Q", b, 20 + n)
    assert 28 + n + m + 4 == len(b), f"{p}: lengths do not add up"
    (crc,) = struct.unpack_from("<I", b, len(b) - 4)
    assert crc == zlib.crc32(b[:-4]) & 0xFFFFFFFF, f"{p}: CRC mismatch"
PY
}

# ---- dirmoe-data build -------------------------------------------------------------------------
DATA_ARGS=(--quiet --source "$DATA_SRC/tree" --source "$DATA_SRC/jsonl/mixed.jsonl.gz" --vocab-size 600
           --split 0.7,0.15,0.15 --seed 3)
"$BIN/dirmoe-data" build --out "$TMP/data" "${DATA_ARGS[@]}" || fail "reference data build"
ref_files=$("$PY" -c 'import json,sys; print(json.dumps(json.load(open(sys.argv[1]))["files"], sort_keys=True))' "$TMP/data/manifest.json")
for d in "${DELAYS[@]}"; do
  out="$TMP/data_$d"
  if kill_after "$d" "$BIN/dirmoe-data" build --out "$out" "${DATA_ARGS[@]}"; then
    if [ -e "$out/manifest.json" ]; then
      "$BIN/dirmoe-data" verify "$out" >/dev/null 2>&1 || fail "data killed at ${d}s: a manifest vouches for a damaged directory"
    elif [ -d "$out" ]; then
      # A directory without a manifest is refused by its readers, with the fix in the message.
      if "$BIN/dirmoe-train" --config "$SRC/experiments/configs/tiny_switch.json" --out "$TMP/t_$d" \
           --set data.dir="$out" --set train.max_steps=1 --set train.device=cpu 2>"$TMP/err"; then
        fail "data killed at ${d}s: training accepted a directory without a manifest"
      fi
      grep -q "dirmoe-data build" "$TMP/err" || { cat "$TMP/err"; fail "unfinished data dir message"; }
    fi
    state=killed
  else
    [ "$run_rc" -eq 0 ] || fail "data build exited $run_rc"
    state=finished
  fi
  "$BIN/dirmoe-data" build --out "$out" "${DATA_ARGS[@]}" || fail "data rebuild after kill at ${d}s"
  got=$("$PY" -c 'import json,sys; print(json.dumps(json.load(open(sys.argv[1]))["files"], sort_keys=True))' "$out/manifest.json")
  [ "$got" = "$ref_files" ] || fail "data rebuilt after kill at ${d}s differs from an uninterrupted build"
  echo "ok: dirmoe-data build ${state} at ${d}s; rebuild identical"
done

# ---- dirmoe-train ------------------------------------------------------------------------------
TRAIN=(--config "$SRC/experiments/configs/tiny_dirmoe.json" --set data.dir="$TMP/data" --set model.d_model=32
       --set model.n_layers=2 --set model.n_heads=2 --set model.n_kv_heads=1 --set model.d_ff=64 --set model.seq_len=32
       --set model.n_experts=4 --set train.batch_size=4 --set train.threads=1 --set train.log_every=1
       --set train.eval_batches=1 --set train.device=cpu --set train.max_steps=16 --set train.eval_every=8
       --set train.ckpt_every=4)
# Every step logged once, with the losses of the uninterrupted run, and the summary says finished.
same_run() {
  "$PY" - "$1" "$2" <<'PY'
import json, sys
a = [json.loads(l) for l in open(f"{sys.argv[1]}/metrics.jsonl")]
b = [json.loads(l) for l in open(f"{sys.argv[2]}/metrics.jsonl")]
assert [x["step"] for x in b] == list(range(1, 17)), [x["step"] for x in b]
assert [x["loss"] for x in a] == [x["loss"] for x in b]
s = json.load(open(f"{sys.argv[2]}/summary.json"))
assert s["status"] == "finished", s["status"]
PY
}
"$BIN/dirmoe-train" "${TRAIN[@]}" --out "$TMP/run" 2>"$TMP/run.err" || { cat "$TMP/run.err"; fail "reference training run"; }
for d in "${DELAYS[@]}"; do
  out="$TMP/run_$d"
  if kill_after "$d" "$BIN/dirmoe-train" "${TRAIN[@]}" --out "$out"; then
    # A kill after the summary was written is a finished run: then it must be whole.
    if grep -qs '"status": "finished"' "$out/summary.json"; then
      same_run "$TMP/run" "$out" || fail "train killed at ${d}s left a summary saying finished over an unfinished run"
    fi
    [ -d "$out/checkpoints" ] && { check_checkpoints "$out/checkpoints" || fail "train killed at ${d}s left a damaged checkpoint"; }
    state=killed
  else
    [ "$run_rc" -eq 0 ] || fail "train exited $run_rc"
    state=finished
  fi
  "$BIN/dirmoe-train" "${TRAIN[@]}" --out "$out" --resume 2>"$TMP/resume.err" \
    || { cat "$TMP/resume.err"; fail "resume after kill at ${d}s"; }
  check_checkpoints "$out/checkpoints" || fail "checkpoints after resume"
  same_run "$TMP/run" "$out" || fail "train resumed after kill at ${d}s does not match the uninterrupted run"
  echo "ok: dirmoe-train ${state} at ${d}s; resumed run identical to the uninterrupted one"
done

# ---- dirmoe-eval -------------------------------------------------------------------------------
EVAL=(--checkpoint "$TMP/run" --tasks arc_easy,hellaswag,lambada_openai --task-dir "$SRC/tests/data/tasks"
      --data "$TMP/data" --device cpu --set eval.validation_tokens=2000)
"$BIN/dirmoe-eval" "${EVAL[@]}" --out "$TMP/eval.json" >/dev/null 2>"$TMP/eval.err" || { cat "$TMP/eval.err"; fail "reference eval"; }
metrics() { "$PY" -c 'import json,sys; r=json.load(open(sys.argv[1])); print(json.dumps({k: v["metrics"] for k, v in r["tasks"].items()}, sort_keys=True), r["validation"]["perplexity"])' "$1"; }
ref_eval=$(metrics "$TMP/eval.json")
for d in "${DELAYS[@]}"; do
  out="$TMP/eval_$d.json"
  if kill_after "$d" "$BIN/dirmoe-eval" "${EVAL[@]}" --out "$out"; then state=killed; else state=finished; fi
  if [ -e "$out" ]; then metrics "$out" >/dev/null || fail "eval killed at ${d}s left a broken $out"; fi
  "$BIN/dirmoe-eval" "${EVAL[@]}" --out "$out" >/dev/null 2>&1 || fail "eval rerun after kill at ${d}s"
  [ "$(metrics "$out")" = "$ref_eval" ] || fail "eval rerun after kill at ${d}s differs"
  echo "ok: dirmoe-eval ${state} at ${d}s; rerun identical"
done

# ---- dirmoe-analyze ----------------------------------------------------------------------------
ANALYZE=(--checkpoint "$TMP/run" --data "$TMP/data" --tokens 2048 --trace-tokens 256 --device cpu)
"$BIN/dirmoe-analyze" "${ANALYZE[@]}" --out "$TMP/an" >/dev/null 2>"$TMP/an.err" || { cat "$TMP/an.err"; fail "reference analyze"; }
report_of() { "$PY" -c 'import json,sys; r=json.load(open(sys.argv[1])); r.pop("source", None); print(json.dumps(r, sort_keys=True))' "$1"; }
ref_an=$(report_of "$TMP/an/report.json")
for d in "${DELAYS[@]}"; do
  out="$TMP/an_$d"
  if kill_after "$d" "$BIN/dirmoe-analyze" "${ANALYZE[@]}" --out "$out"; then state=killed; else state=finished; fi
  if [ -e "$out/routing.h5" ]; then
    "$BIN/dirmoe-analyze" report "$out/routing.h5" --out "$TMP/check_$d" >/dev/null 2>&1 \
      || fail "analyze killed at ${d}s left a routing.h5 that does not read back"
  fi
  if [ -e "$out/report.json" ]; then report_of "$out/report.json" >/dev/null || fail "analyze killed at ${d}s: broken report.json"; fi
  "$BIN/dirmoe-analyze" "${ANALYZE[@]}" --out "$out" >/dev/null 2>&1 || fail "analyze rerun after kill at ${d}s"
  [ "$(report_of "$out/report.json")" = "$ref_an" ] || fail "analyze rerun after kill at ${d}s differs"
  echo "ok: dirmoe-analyze ${state} at ${d}s; rerun identical"
done
echo "ok"
