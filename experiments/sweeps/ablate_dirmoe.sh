#!/usr/bin/env bash
# DirMoE ablations around one recipe: each variant changes one thing from the base run.
#
#   experiments/sweeps/ablate_dirmoe.sh [--scale tiny|185m] [--seeds N] [--out DIR] [--jobs J]
#        [--steps N] [--data DIR] [--task-dir DIR] [--tasks a,b] [--variants "base no_sparsity ..."]
#        [--set a.b=v ...] [--eval-set a.b=v ...] [--analyze-tokens N]
#
# Variants (run directories <out>/<variant>/seed<N>/):
#   base          the recipe as it is (sparsity penalty on, schedules on, k = 1, straight-through)
#   no_sparsity   router.dirmoe.lambda_sparsity = 0: nothing pulls E[k] toward k
#   no_schedules  router.dirmoe.schedules = false: τ_z, a_lo and λ^p stay at their start values
#   k2            model.n_experts_active = 2: target two active experts (E[k] and FLOPs double)
#   soft          router.dirmoe.selection = soft: every expert gets its weight, no hard mask
# Same resume rules as compare_routers.sh (sweep_lib.sh); results.md/csv compare the variants.
set -euo pipefail
root=$(cd "$(dirname "$0")/../.." && pwd)
bin=${DIRMOE_BIN_DIR:-$root/build/bin}
python=${DIRMOE_PYTHON:-$root/.venv/bin/python}
source "$root/experiments/sweeps/sweep_lib.sh"

scale=tiny seeds=1 out=runs/ablate_dirmoe jobs=1 steps="" data="" task_dir="" eval_tasks=""
variants="base no_sparsity no_schedules k2 soft"
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
    --variants) variants=$2; shift 2 ;;
    --analyze-tokens) analyze_tokens=$2; shift 2 ;;
    --set) extra_sets+=(--set "$2"); shift 2 ;;
    --eval-set) eval_sets+=(--set "$2"); shift 2 ;;
    -h|--help) sed -n '2,15p' "$0"; exit 0 ;;
    *) echo "ablate_dirmoe.sh: unknown option $1 (see --help)" >&2; exit 2 ;;
  esac
done
case "$scale" in
  tiny) config="$root/experiments/configs/tiny_dirmoe.json"; eval_sets=(--set eval.validation_tokens=65536 "${eval_sets[@]}") ;;
  185m) config="$root/experiments/configs/llama185m_dirmoe.json" ;;
  *) echo "ablate_dirmoe.sh: --scale must be tiny or 185m" >&2; exit 2 ;;
esac
variant_sets() {  # the --set arguments that make a variant
  case "$1" in
    base) ;;
    no_sparsity) echo "--set router.dirmoe.lambda_sparsity=0" ;;
    no_schedules) echo "--set router.dirmoe.schedules=false" ;;
    k2) echo "--set model.n_experts_active=2" ;;
    soft) echo "--set router.dirmoe.selection=soft" ;;
    *) return 1 ;;
  esac
}
for v in $variants; do
  variant_sets "$v" > /dev/null || { echo "ablate_dirmoe.sh: unknown variant '$v' (see --help)" >&2; exit 2; }
done
[[ "$seeds" =~ ^[1-9][0-9]*$ ]] || { echo "ablate_dirmoe.sh: --seeds must be a positive integer" >&2; exit 2; }
[[ "$jobs" =~ ^[1-9][0-9]*$ ]] || { echo "ablate_dirmoe.sh: --jobs must be a positive integer" >&2; exit 2; }
sweep_require_tools
mkdir -p "$out"
threads=$(( $(nproc) / jobs )); (( threads >= 1 )) || threads=1
[ -n "$eval_tasks" ] || eval_tasks=$(sweep_default_tasks)

for seed in $(seq 1 "$seeds"); do
  for v in $variants; do
    # shellcheck disable=SC2207  # the variant's sets are fixed words without spaces
    sets=(--set "train.seed=$seed" --set "train.threads=$threads" $(variant_sets "$v") "${extra_sets[@]}")
    [ -n "$steps" ] && sets+=(--set "train.max_steps=$steps")
    sweep_spawn sweep_run_one "$v seed $seed" "$out/$v/seed$seed" "$config" "${sets[@]}"
  done
done
failed=0
sweep_wait_all || failed=1

"$python" "$root/analysis/results_table.py" "$out" --routers $variants --label variant
if ((failed)); then
  echo "ablate_dirmoe.sh: some runs failed (see the messages above); re-run the same command to retry them" >&2
  exit 1
fi
