#!/usr/bin/env bash
# Several processes train the model one process trains: DirMoE (Logistic and Gamma noise on) with
# expert parallelism over 2 processes and with plain data parallelism, each against one process with
# the same global batch for 20 steps; a run written by 2 expert-parallel processes resumed by one
# continues the one-process loss curve; its checkpoint reads in dirmoe-analyze; model.expert_parallel
# errors name the setting. The other three routers: test_train_parallel_routers.sh.
set -uo pipefail
. "$(dirname "$0")/common.sh"
. "$(dirname "$0")/parallel_common.sh"
if [ ! -x "$TORCHRUN" ]; then echo "SKIP: $TORCHRUN not found"; exit 0; fi

fixture_data "$TMP/data" --split 0.7,0.15,0.15 || fail "fixture data build"

# 1. Settings that cannot work are refused with the setting named.
if "$BIN/dirmoe-train" --config "$SRC/experiments/configs/tiny_dirmoe.json" --out "$TMP/bad" --set data.dir="$TMP/data" \
     "${PAR[@]}" --set model.expert_parallel=3 2>"$TMP/err"; then fail "expert_parallel=3 with 4 experts accepted"; fi
grep -q "model.expert_parallel (3) must be >= 1 and divide model.n_experts (4)" "$TMP/err" || { cat "$TMP/err"; fail "message"; }
if "$BIN/dirmoe-train" --config "$SRC/experiments/configs/tiny_dirmoe.json" --out "$TMP/bad" --set data.dir="$TMP/data" \
     "${PAR[@]}" --set model.expert_parallel=2 2>"$TMP/err"; then fail "expert_parallel=2 in one process accepted"; fi
grep -q "model.expert_parallel = 2 must divide the number of processes (1)" "$TMP/err" || { cat "$TMP/err"; fail "message"; }
echo "ok: refused -> $(head -c 200 "$TMP/err")"

# 2. One process, then two: expert parallel and data parallel. The λ_s controller is on, so that its
# measurement is checked to be the whole batch's.
CTL=(--set router.dirmoe.sparsity_control=1.2)
run_single dirmoe "$TMP/one" "${CTL[@]}"
run_pair dirmoe 2 "$TMP/ep" "${CTL[@]}"
run_pair dirmoe 1 "$TMP/dp" "${CTL[@]}"
grep -q "experts over 2 per group" "$TMP/ep.err" || fail "the banner does not say expert parallel"
compare_runs "$TMP/one" "$TMP/ep" "dirmoe expert parallel (2 processes) vs 1 process" || fail "expert parallel differs"
compare_runs "$TMP/one" "$TMP/dp" "dirmoe data parallel (2 processes) vs 1 process" || fail "data parallel differs"

# 3. Resume across N: the 2-process expert-parallel run's step-10 checkpoint, resumed by one process.
rm "$TMP/ep/checkpoints/step_00000020.ckpt"
run_single dirmoe "$TMP/ep" "${CTL[@]}" --set model.expert_parallel=1 --resume
grep -q "resumed from .*step_00000010.ckpt at step 10" "$TMP/ep.err" || { cat "$TMP/ep.err"; fail "did not resume at step 10"; }
"$PY" - "$TMP/one" "$TMP/ep" <<'PY' || fail "the resumed run left the 1-process loss curve"
import json, sys
a, b = ([json.loads(l) for l in open(f"{d}/metrics.jsonl")] for d in sys.argv[1:3])
assert [x["step"] for x in b] == list(range(1, 21)), [x["step"] for x in b]
worst = max(abs(x["lm_loss"] - y["lm_loss"]) / x["lm_loss"] for x, y in zip(a[10:], b[10:]))
assert worst < 2e-3, worst
assert worst < 2e-5, f"{worst}: within 2e-3 but not within 2e-5 (the runs agree to rounding)"
worst_g = max(abs(x["grad_norm"] - y["grad_norm"]) / x["grad_norm"] for x, y in zip(a[10:], b[10:]))
assert worst_g < 1e-4, worst_g
assert a[-1]["tokens"] == b[-1]["tokens"]
sa, sb = (json.load(open(f"{d}/summary.json")) for d in sys.argv[1:3])
assert abs(sa["final_val_loss"] - sb["final_val_loss"]) / sa["final_val_loss"] < 2e-3
print(f"ok: 2 -> 1 process resume at step 10: steps 11-20 within {worst:.2e} of the uninterrupted run")
PY

# 4. The expert-parallel checkpoint is the full model: dirmoe-analyze reads it as any other.
"$BIN/dirmoe-analyze" --checkpoint "$TMP/ep/checkpoints/step_00000010.ckpt" --split validation --tokens 500 \
  --batch-size 4 --data "$TMP/data" --out "$TMP/an_ep" 2>"$TMP/an.err" || { cat "$TMP/an.err"; fail "analyze"; }
"$BIN/dirmoe-analyze" --checkpoint "$TMP/one/checkpoints/step_00000010.ckpt" --split validation --tokens 500 \
  --batch-size 4 --data "$TMP/data" --out "$TMP/an_one" 2>"$TMP/an.err" || { cat "$TMP/an.err"; fail "analyze"; }
"$PY" - "$TMP/an_one" "$TMP/an_ep" <<'PY' || fail "routing.h5 of the expert-parallel checkpoint"
import sys
import h5py, numpy as np
with h5py.File(f"{sys.argv[1]}/routing.h5") as a, h5py.File(f"{sys.argv[2]}/routing.h5") as b:
    for layer in range(2):
        ta, tb = a[f"layer_{layer:02d}/tokens_per_expert"][()], b[f"layer_{layer:02d}/tokens_per_expert"][()]
        assert ta.shape == tb.shape == (4,), (ta.shape, tb.shape)
        assert np.abs(ta - tb).sum() <= 0.02 * ta.sum(), (ta, tb)
print("ok: dirmoe-analyze reads the expert-parallel checkpoint; routing.h5 as the 1-process one's")
PY
echo "ok"
