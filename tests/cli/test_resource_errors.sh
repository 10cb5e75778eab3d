#!/usr/bin/env bash
# Resource errors end in a clear message naming the file and what to do, a non-zero exit and no
# output that passes for complete: a full disk (a file-size limit, `ulimit -f`, under which writes
# fail with EFBIG once the apps ignore SIGXFSZ), a read-only output directory, and a config asking
# for CUDA where there is none.
set -uo pipefail
. "$(dirname "$0")/common.sh"
export OMP_NUM_THREADS=1

DATA_ARGS=(--quiet --source "$DATA_SRC/tree" --source "$DATA_SRC/jsonl/mixed.jsonl.gz" --vocab-size 600
           --split 0.7,0.15,0.15 --seed 3)
TRAIN=(--config "$SRC/experiments/configs/tiny_switch.json" --set model.d_model=32 --set model.n_layers=2
       --set model.n_heads=2 --set model.n_kv_heads=1 --set model.d_ff=64 --set model.seq_len=32 --set model.n_experts=4
       --set train.batch_size=4 --set train.threads=1 --set train.eval_batches=1 --set train.device=cpu
       --set train.max_steps=4 --set train.eval_every=0 --set train.ckpt_every=2)

# Runs "$@" under a file-size limit of $1 KiB; expects failure with "$2" in the message.
expect_full_disk() {
  local kib=$1 what=$2; shift 2
  if (ulimit -f "$kib"; "$@") >"$TMP/out" 2>"$TMP/err"; then fail "$what: succeeded under a ${kib} KiB file-size limit"; fi
  rc=$?
  [ $rc -ne 153 ] && [ $rc -lt 128 ] || fail "$what: killed by a signal (exit $rc) instead of reporting the write error"
  grep -Eq "File too large|disk full|write failed|cannot write|could not write" "$TMP/err" \
    || { cat "$TMP/err"; fail "$what: the message does not say the write failed"; }
  echo "ok: full disk, $what -> $(tr '\n' ' ' <"$TMP/err" | head -c 200)"
}

# ---- full disk ---------------------------------------------------------------------------------
expect_full_disk 24 "dirmoe-data build" "$BIN/dirmoe-data" build --out "$TMP/data_full" "${DATA_ARGS[@]}"
[ -e "$TMP/data_full/manifest.json" ] && fail "a data build that ran out of space left a manifest"

"$BIN/dirmoe-data" build --out "$TMP/data" "${DATA_ARGS[@]}" || fail "data build"
TRAIN+=(--set data.dir="$TMP/data")
expect_full_disk 24 "dirmoe-train" "$BIN/dirmoe-train" "${TRAIN[@]}" --out "$TMP/run_full"
ls "$TMP/run_full/checkpoints"/*.ckpt >/dev/null 2>&1 && fail "a training run that ran out of space left a checkpoint"
grep -qs '"status": "finished"' "$TMP/run_full/summary.json" && fail "a training run that ran out of space says finished"

# The routing time series (train.stats_every) is what runs out of space: no checkpoint before it.
for kib in 4 16; do
  expect_full_disk $kib "dirmoe-train, routing_train.h5 at $kib KiB" "$BIN/dirmoe-train" "${TRAIN[@]}" \
    --set train.ckpt_every=0 --set train.max_steps=30 --set train.stats_every=1 --out "$TMP/run_full_ts$kib"
done

"$BIN/dirmoe-train" "${TRAIN[@]}" --out "$TMP/run" >/dev/null 2>&1 || fail "training run"
expect_full_disk 1 "dirmoe-eval" "$BIN/dirmoe-eval" --checkpoint "$TMP/run" --tasks arc_easy \
  --task-dir "$SRC/tests/data/tasks" --data "$TMP/data" --device cpu --set eval.validation_tokens=0 --out "$TMP/eval.json"
[ -e "$TMP/eval.json" ] && fail "an eval that ran out of space left its JSON"
expect_full_disk 8 "dirmoe-analyze" "$BIN/dirmoe-analyze" --checkpoint "$TMP/run" --data "$TMP/data" --tokens 512 \
  --device cpu --out "$TMP/an"
[ -e "$TMP/an/routing.h5" ] && fail "an analysis that ran out of space left routing.h5"

# ---- read-only output directory ----------------------------------------------------------------
# root writes through permission bits, so as root the tools run as `nobody` (setpriv) instead.
mkdir -p "$TMP/ro"
chmod 555 "$TMP/ro"
AS=()
if [ "$(id -u)" -eq 0 ]; then
  if command -v setpriv >/dev/null 2>&1 && id nobody >/dev/null 2>&1; then
    AS=(setpriv --reuid=nobody --regid="$(id -g nobody)" --clear-groups)
    chmod 755 "$TMP"; chmod -R a+rX "$TMP/data" "$TMP/run"
  else
    echo "SKIP: read-only directory checks need setpriv when run as root"
  fi
fi
if [ "$(id -u)" -ne 0 ] || ((${#AS[@]})); then
  for cmd in "data:$BIN/dirmoe-data build --out $TMP/ro/data ${DATA_ARGS[*]}" \
             "train:$BIN/dirmoe-train ${TRAIN[*]} --out $TMP/ro/run" \
             "eval:$BIN/dirmoe-eval --checkpoint $TMP/run --tasks arc_easy --task-dir $SRC/tests/data/tasks --data $TMP/data --device cpu --set eval.validation_tokens=0 --out $TMP/ro/eval.json" \
             "analyze:$BIN/dirmoe-analyze --checkpoint $TMP/run --data $TMP/data --tokens 512 --device cpu --out $TMP/ro/an"; do
    name=${cmd%%:*}
    # shellcheck disable=SC2086
    if "${AS[@]}" ${cmd#*:} >/dev/null 2>"$TMP/err"; then fail "$name: wrote into a read-only directory"; fi
    grep -q "$TMP/ro" "$TMP/err" || { cat "$TMP/err"; fail "$name: the message does not name the directory"; }
    grep -Eqi "permission denied|cannot create|not writable|writable" "$TMP/err" \
      || { cat "$TMP/err"; fail "$name: the message does not say why"; }
    [ -z "$(ls -A "$TMP/ro")" ] || fail "$name: left files in the read-only directory"
    echo "ok: read-only dir, $name -> $(tr '\n' ' ' <"$TMP/err" | head -c 200)"
  done
fi

# ---- CUDA asked for where there is none --------------------------------------------------------
if command -v nvidia-smi >/dev/null 2>&1 && nvidia-smi -L >/dev/null 2>&1; then
  echo "SKIP: a CUDA device is present"
else
  if "$BIN/dirmoe-train" "${TRAIN[@]}" --set train.device=cuda --out "$TMP/cuda" 2>"$TMP/err"; then fail "train ran on cuda"; fi
  grep -q "train.device" "$TMP/err" && grep -q "cpu" "$TMP/err" || { cat "$TMP/err"; fail "train cuda message"; }
  [ -e "$TMP/cuda/checkpoints" ] && fail "train on a missing GPU left checkpoints"
  echo "ok: cuda, train -> $(head -c 200 "$TMP/err")"
  if "$BIN/dirmoe-eval" --checkpoint "$TMP/run" --tasks arc_easy --task-dir "$SRC/tests/data/tasks" --data "$TMP/data" \
       --device cuda --out "$TMP/cuda.json" 2>"$TMP/err"; then fail "eval ran on cuda"; fi
  grep -q "CUDA is not available" "$TMP/err" && grep -q -- "--device" "$TMP/err" && grep -q "cpu" "$TMP/err" \
    || { cat "$TMP/err"; fail "eval cuda message"; }
  [ -e "$TMP/cuda.json" ] && fail "eval on a missing GPU left its JSON"
  echo "ok: cuda, eval -> $(head -c 200 "$TMP/err")"
  if "$BIN/dirmoe-analyze" --checkpoint "$TMP/run" --data "$TMP/data" --tokens 512 --device cuda --out "$TMP/cuda_an" \
       2>"$TMP/err"; then
    fail "analyze ran on cuda"
  fi
  grep -q "CUDA is not available" "$TMP/err" && grep -q -- "--device" "$TMP/err" && ! grep -q "train.device" "$TMP/err" \
    || { cat "$TMP/err"; fail "analyze cuda message (it must name --device, the option given)"; }
  [ -e "$TMP/cuda_an/routing.h5" ] && fail "analyze on a missing GPU left routing.h5"
  echo "ok: cuda, analyze -> $(head -c 200 "$TMP/err")"
fi
echo "ok"
