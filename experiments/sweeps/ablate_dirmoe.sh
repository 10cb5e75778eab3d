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

out=runs/ablate_dirmoe
variants="base no_sparsity no_schedules k2 soft"
sweep_parse_args "$@"
set -- "${sweep_rest[@]}"
while (($#)); do
  case "$1" in
    --variants) (($# >= 2)) || { echo "ablate_dirmoe.sh: --variants needs a value" >&2; exit 2; }; variants=$2; shift 2 ;;
    -h|--help) sweep_usage; exit 0 ;;
    *) echo "ablate_dirmoe.sh: unknown option $1 (see --help)" >&2; exit 2 ;;
  esac
done
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
sweep_setup

for seed in $(seq 1 "$seeds"); do
  for v in $variants; do
    # shellcheck disable=SC2207  # the variant's sets are fixed words without spaces
    sets=(--set "train.seed=$seed" --set "train.threads=$threads" $(variant_sets "$v") "${extra_sets[@]}")
    [ -n "$steps" ] && sets+=(--set "train.max_steps=$steps")
    sweep_spawn sweep_run_one "$v seed $seed" "$out/$v/seed$seed" "$(sweep_config dirmoe)" "${sets[@]}"
  done
done
failed=0
sweep_wait_all || failed=1

"$python" "$root/analysis/results_table.py" "$out" --routers $variants --label variant
if ((failed)); then
  echo "ablate_dirmoe.sh: some runs failed (see the messages above); re-run the same command to retry them" >&2
  exit 1
fi
