#!/usr/bin/env bash
# make demo: default corpus → a short train of each router at parity → eval → analyze → report.
# Everything lands in runs/demo (override with DEMO_OUT); the corpus in data/default.
# DEMO_STEPS (default 300, the tiny recipes' own budget, at which their parity was calibrated) sets
# the training steps of each tiny run.
set -euo pipefail
cd "$(dirname "$0")/.."
bin=build/bin
out=${DEMO_OUT:-runs/demo}
steps=${DEMO_STEPS:-300}

echo "== 1/4 default corpus (data/default)"
if [ -f data/default/manifest.json ]; then
  echo "data/default is built (delete it to rebuild)"
else
  "$bin/dirmoe-data" build --out data/default
fi

echo "== 2/4 tiny runs of dirmoe, switch, remoe, sparsemixer ($steps steps each), eval, analyze"
# Two runs side by side with one thread each use 2 cores better than one run with two threads.
jobs=$(( $(nproc) >= 2 ? 2 : 1 ))
experiments/sweeps/compare_routers.sh --scale tiny --seeds 1 --steps "$steps" --jobs "$jobs" \
  --set train.eval_every=50 --set train.ckpt_every=50 --analyze-tokens 16384 --out "$out"

echo "== 3/4 routing plots"
for router in dirmoe switch; do
  run="$out/$router/seed1"
  train_series=()
  [ -f "$run/routing_train.h5" ] && train_series=(--train "$run/routing_train.h5")
  .venv/bin/python analysis/plot_routing.py "$run/analysis/routing.h5" "${train_series[@]}" --out "$run/plots"
done

echo "== 4/4 report"
echo
echo "-- routing, side by side ($out/routing_compare.md)"
cat "$out/routing_compare.md"
echo
echo "-- results ($out/results.md)"
cat "$out/results.md"
echo
echo "demo: runs, evals, routing.h5 files and plots are under $out"
