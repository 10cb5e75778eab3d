#!/usr/bin/env bash
# The 1-process vs 2-process check of test_train_parallel.sh for the other three routers (Switch,
# ReMoE, SparseMixer-v2): expert parallel and data parallel, 20 steps each.
set -uo pipefail
. "$(dirname "$0")/common.sh"
. "$(dirname "$0")/parallel_common.sh"
if [ ! -x "$TORCHRUN" ]; then echo "SKIP: $TORCHRUN not found"; exit 0; fi

fixture_data "$TMP/data" --split 0.7,0.15,0.15 || fail "fixture data build"
# NOTE: these three routers have batch-level auxiliary losses (the balance loss of Switch and
# SparseMixer-v2, ReMoE's L1 term); their means over tokens are taken over the global batch
# (router/batch_mean.h), so the routing is the same as well: loads within 1e-3.
for router in switch remoe sparsemixer; do
  run_single "$router" "$TMP/one_$router"
  run_pair "$router" 2 "$TMP/ep_$router"
  run_pair "$router" 1 "$TMP/dp_$router"
  compare_runs "$TMP/one_$router" "$TMP/ep_$router" "$router expert parallel (2 processes) vs 1 process" \
    || fail "$router: expert parallel differs"
  compare_runs "$TMP/one_$router" "$TMP/dp_$router" "$router data parallel (2 processes) vs 1 process" \
    || fail "$router: data parallel differs"
done
echo "ok"
