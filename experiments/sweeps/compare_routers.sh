#!/usr/bin/env bash
# Trains DirMoE, Switch (top-1), ReMoE and SparseMixer-v2 at the same expected active experts,
# parameter count and token budget, then evaluates and analyzes each run and writes the results
# table (results.md, results.csv, val_loss.png) into --out.
#
#   experiments/sweeps/compare_routers.sh [--scale tiny|185m] [--seeds N] [--out DIR] [--jobs J]
#        [--steps N] [--data DIR] [--task-dir DIR] [--tasks a,b] [--routers "dirmoe switch ..."]
#        [--set a.b=v ...] [--eval-set a.b=v ...] [--analyze-tokens N]
#
# Resume-safe: a finished run is not trained again, an interrupted one is resumed from its newest
# checkpoint, and eval/analysis outputs that exist are kept (see sweep_lib.sh). Re-running the same
# command after an interruption or a failure finishes the job. Runs go in parallel with --jobs
# (each gets cores/jobs threads). Run directories: <out>/<router>/seed<N>/.
set -euo pipefail
root=$(cd "$(dirname "$0")/../.." && pwd)
bin=${DIRMOE_BIN_DIR:-$root/build/bin}
python=${DIRMOE_PYTHON:-$root/.venv/bin/python}
source "$root/experiments/sweeps/sweep_lib.sh"

scale=tiny seeds=1 out=runs/compare jobs=1 steps="" data="" task_dir="" eval_tasks=""
routers="dirmoe switch remoe sparsemixer"
analyze_tokens=32768
extra_sets=() eval_sets=()
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
    --eval-set) eval_sets+=(--set "$2"); shift 2 ;;
    -h|--help) sed -n '2,14p' "$0"; exit 0 ;;
    *) echo "compare_routers.sh: unknown option $1 (see --help)" >&2; exit 2 ;;
  esac
done
case "$scale" in
  # tiny: a smaller validation sample keeps eval at about a minute per run on 2 cores
  tiny) prefix=tiny; eval_sets=(--set eval.validation_tokens=65536 "${eval_sets[@]}") ;;
  185m) prefix=llama185m ;;
  *) echo "compare_routers.sh: --scale must be tiny or 185m" >&2; exit 2 ;;
esac
[[ "$seeds" =~ ^[1-9][0-9]*$ ]] || { echo "compare_routers.sh: --seeds must be a positive integer" >&2; exit 2; }
[[ "$jobs" =~ ^[1-9][0-9]*$ ]] || { echo "compare_routers.sh: --jobs must be a positive integer" >&2; exit 2; }
sweep_require_tools
mkdir -p "$out"
threads=$(( $(nproc) / jobs )); (( threads >= 1 )) || threads=1
[ -n "$eval_tasks" ] || eval_tasks=$(sweep_default_tasks)

for seed in $(seq 1 "$seeds"); do
  for router in $routers; do
    sets=(--set "train.seed=$seed" --set "train.threads=$threads" "${extra_sets[@]}")
    [ -n "$steps" ] && sets+=(--set "train.max_steps=$steps")
    sweep_spawn sweep_run_one "$router seed $seed" "$out/$router/seed$seed" \
      "$root/experiments/configs/${prefix}_${router}.json" "${sets[@]}"
  done
done
failed=0
sweep_wait_all || failed=1

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
