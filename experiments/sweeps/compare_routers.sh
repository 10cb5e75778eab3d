#!/usr/bin/env bash
# Trains DirMoE, Switch (top-1), ReMoE and SparseMixer-v2 at the same expected active experts,
# parameter count and token budget, then evaluates and analyzes each run and writes the results
# table (results.md, results.csv, val_loss.png) into --out.
#
#   experiments/sweeps/compare_routers.sh [--scale tiny|185m] [--seeds N] [--out DIR] [--jobs J]
#        [--steps N] [--data DIR] [--task-dir DIR] [--routers "dirmoe switch ..."] [--set a.b=v ...]
#
# Resume-safe: a run whose summary.json says "finished" is not trained again, an interrupted one
# is resumed from its newest checkpoint, and eval/analysis outputs that exist are kept. Runs go
# in parallel with --jobs (each gets cores/jobs threads).
set -euo pipefail
root=$(cd "$(dirname "$0")/../.." && pwd)
bin=${DIRMOE_BIN_DIR:-$root/build/bin}
python=${DIRMOE_PYTHON:-$root/.venv/bin/python}

scale=tiny seeds=1 out=runs/compare jobs=1 steps="" data="" task_dir="" eval_tasks=""
routers="dirmoe switch remoe sparsemixer"
analyze_tokens=32768
extra_sets=()
while (($#)); do
  case "$1" in
    --scale) scale=$2; shift 2 ;;
    --seeds) seeds=$2; shift 2 ;;
    --out) out=$2; shift 2 ;;
    --jobs) jobs=$2; shift 2 ;;
    --steps) steps=$2; shift 2 ;;
    --data) data=$2; shift 2 ;;
    --task-dir) task_dir=$2; shift 2 ;;
    --tasks) eval_tasks=$2; shift 2 ;;
    --routers) routers=$2; shift 2 ;;
    --analyze-tokens) analyze_tokens=$2; shift 2 ;;
    --set) extra_sets+=(--set "$2"); shift 2 ;;
    -h|--help) sed -n '2,13p' "$0"; exit 0 ;;
    *) echo "compare_routers.sh: unknown option $1 (see --help)" >&2; exit 2 ;;
  esac
done
eval_sets=()
case "$scale" in
  # tiny: a smaller validation sample keeps eval at about a minute per run on 2 cores
  tiny) prefix=tiny; eval_sets=(--set eval.validation_tokens=65536) ;;
  185m) prefix=llama185m ;;
  *) echo "compare_routers.sh: --scale must be tiny or 185m" >&2; exit 2 ;;
esac
for tool in dirmoe-train dirmoe-eval dirmoe-analyze; do
  [ -x "$bin/$tool" ] || { echo "compare_routers.sh: $bin/$tool not found; run 'make build' first" >&2; exit 2; }
done
mkdir -p "$out"
cores=$(nproc)
threads=$(( cores / jobs )); (( threads >= 1 )) || threads=1

# Zero-shot tasks whose files are present in --task-dir join the built-in held-out tasks.
if [ -z "$eval_tasks" ]; then
  eval_tasks="heldout_cloze,heldout_choice"
  if [ -n "$task_dir" ]; then
    for t in arc_easy arc_challenge boolq hellaswag lambada_openai piqa race winogrande openbookqa sciq; do
      [ -f "$task_dir/$t.jsonl" ] && eval_tasks+=",$t"
    done
  fi
fi

run_one() {  # router seed
  local router=$1 seed=$2
  local config="$root/experiments/configs/${prefix}_${router}.json"
  local dir="$out/$router/seed$seed"
  [ -f "$config" ] || { echo "compare_routers.sh: no config $config" >&2; return 1; }
  mkdir -p "$dir"
  local sets=(--set "train.seed=$seed" --set "train.threads=$threads" "${extra_sets[@]}")
  [ -n "$steps" ] && sets+=(--set "train.max_steps=$steps")
  [ -n "$data" ] && sets+=(--set "data.dir=$data")
  if ! grep -q '"status": "finished"' "$dir/summary.json" 2>/dev/null; then
    local resume=()
    ls "$dir"/checkpoints/step_*.ckpt >/dev/null 2>&1 && resume=(--resume)
    echo "[$router seed $seed] train ${resume[*]}"
    "$bin/dirmoe-train" --config "$config" --out "$dir" "${sets[@]}" "${resume[@]}" > "$dir/train.log" 2>&1 \
      || { echo "[$router seed $seed] training failed; see $dir/train.log" >&2; return 1; }
  fi
  local data_args=()
  [ -n "$data" ] && data_args=(--data "$data")
  if [ ! -f "$dir/eval.json" ]; then
    echo "[$router seed $seed] eval"
    local task_args=()
    [ -n "$task_dir" ] && task_args=(--task-dir "$task_dir")
    OMP_NUM_THREADS=$threads "$bin/dirmoe-eval" --checkpoint "$dir" --tasks "$eval_tasks" "${task_args[@]}" "${eval_sets[@]}" \
      "${data_args[@]}" --out "$dir/eval.json" > "$dir/eval.log" 2>&1 \
      || { echo "[$router seed $seed] eval failed; see $dir/eval.log" >&2; return 1; }
  fi
  if [ ! -f "$dir/analysis/routing.h5" ]; then
    echo "[$router seed $seed] analyze"
    OMP_NUM_THREADS=$threads "$bin/dirmoe-analyze" --checkpoint "$dir" --split validation --tokens "$analyze_tokens" \
      "${data_args[@]}" --out "$dir/analysis" > "$dir/analyze.log" 2>&1 \
      || { echo "[$router seed $seed] analyze failed; see $dir/analyze.log" >&2; return 1; }
  fi
  echo "[$router seed $seed] done"
}

failed=0
pids=()
for seed in $(seq 1 "$seeds"); do
  for router in $routers; do
    run_one "$router" "$seed" &
    pids+=($!)
    while (( $(jobs -rp | wc -l) >= jobs )); do wait -n || failed=1; done
  done
done
for pid in "${pids[@]}"; do wait "$pid" 2>/dev/null || true; done
while (( $(jobs -rp | wc -l) > 0 )); do wait -n || failed=1; done

# Per-run routing files side by side, then the results table over seeds.
h5s=()
for router in $routers; do
  for seed in $(seq 1 "$seeds"); do
    f="$out/$router/seed$seed/analysis/routing.h5"
    [ -f "$f" ] && h5s+=("$f")
  done
done
if ((${#h5s[@]})); then
  "$bin/dirmoe-analyze" compare "${h5s[@]}" --out "$out/routing_compare.md" > /dev/null
fi
"$python" "$root/analysis/results_table.py" "$out" --routers $routers
if ((failed)); then
  echo "compare_routers.sh: some runs failed (see the messages above); re-run the same command to retry them" >&2
  exit 1
fi
