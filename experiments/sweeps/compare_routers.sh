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

out=runs/compare
routers="dirmoe switch remoe sparsemixer"
sweep_parse_args "$@"
set -- "${sweep_rest[@]}"
while (($#)); do
  case "$1" in
    --routers) (($# >= 2)) || { echo "compare_routers.sh: --routers needs a value" >&2; exit 2; }; routers=$2; shift 2 ;;
    -h|--help) sweep_usage; exit 0 ;;
    *) echo "compare_routers.sh: unknown option $1 (see --help)" >&2; exit 2 ;;
  esac
done
sweep_setup

for seed in $(seq 1 "$seeds"); do
  for router in $routers; do
    sets=(--set "train.seed=$seed" --set "train.threads=$threads" "${extra_sets[@]}")
    [ -n "$steps" ] && sets+=(--set "train.max_steps=$steps")
    sweep_spawn sweep_run_one "$router seed $seed" "$out/$router/seed$seed" \
      "$(sweep_config "$router")" "${sets[@]}"
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
