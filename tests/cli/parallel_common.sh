# Sourced by test_train_parallel*.sh after common.sh: one process against two (Gloo through
# torchrun, one thread each) on the fixture corpus, with the same global batch of 8 sequences.
#   run_single ROUTER OUT [ARGS...]     one process, train.batch_size=8
#   run_pair ROUTER N OUT [ARGS...]     two processes, train.batch_size=4, model.expert_parallel=N
#   compare_runs A B LABEL              per-step lm_loss within 2e-3 relative (the data-parallel
#                                       tolerance) and, tighter, within 2e-5 with grad_norm within 1e-4
#                                       (the runs agree to rounding, ~1e-7; AdamW hides a wrong gradient
#                                       scale from the loss, not from the norm); validation losses,
#                                       the controllers' λ, summary.json's parity and load blocks,
#                                       routing_train.h5's token counts equal and its loads within 1e-3
TORCHRUN="$SRC/.venv/bin/torchrun"
PAR=(--set model.d_model=32 --set model.n_layers=2 --set model.n_heads=2 --set model.n_kv_heads=1
     --set model.d_ff=64 --set model.seq_len=32 --set model.n_experts=4 --set train.threads=1
     --set train.log_every=1 --set train.eval_batches=2 --set train.device=cpu --set train.max_steps=20
     --set train.eval_every=10 --set train.ckpt_every=10 --set train.stats_every=5)

run_single() {
  local router=$1 out=$2
  shift 2
  "$BIN/dirmoe-train" --config "$SRC/experiments/configs/tiny_$router.json" --out "$out" --set data.dir="$TMP/data" \
    "${PAR[@]}" --set train.batch_size=8 "$@" 2>"$out.err" || { tail -n 20 "$out.err"; fail "1-process $router run"; }
}

run_pair() {
  local router=$1 n=$2 out=$3
  shift 3
  OMP_NUM_THREADS=1 "$TORCHRUN" --standalone --nnodes 1 --nproc-per-node 2 --no-python \
    "$BIN/dirmoe-train" --config "$SRC/experiments/configs/tiny_$router.json" --out "$out" --set data.dir="$TMP/data" \
    "${PAR[@]}" --set train.batch_size=4 --set model.expert_parallel="$n" "$@" >"$out.err" 2>&1 \
    || { tail -n 40 "$out.err"; fail "2-process $router run (expert_parallel=$n)"; }
}

compare_runs() {
  "$PY" - "$1" "$2" "$3" <<'PY'
import glob, json, sys
import h5py, numpy as np
a_dir, b_dir, label = sys.argv[1:4]
load_tol = 1e-3
def metrics(d):
    return [json.loads(l) for l in open(f"{d}/metrics.jsonl")]
a, b = metrics(a_dir), metrics(b_dir)
assert [x["step"] for x in a] == [x["step"] for x in b] == list(range(1, 21)), (len(a), len(b))
worst = 0.0
for x, y in zip(a, b):
    assert x["tokens"] == y["tokens"], (x["step"], x["tokens"], y["tokens"])
    rel = abs(x["lm_loss"] - y["lm_loss"]) / abs(x["lm_loss"])
    worst = max(worst, rel)
    assert rel < 2e-3, f"step {x['step']}: lm_loss {x['lm_loss']} vs {y['lm_loss']}"
    assert rel < 2e-5, f"step {x['step']}: lm_loss {x['lm_loss']} vs {y['lm_loss']} (within 2e-3 but not 2e-5)"
    g = abs(x["grad_norm"] - y["grad_norm"]) / x["grad_norm"]
    assert g < 1e-4, f"step {x['step']}: grad_norm {x['grad_norm']} vs {y['grad_norm']}"
    # controllers (ReMoE's λ, DirMoE's λ_s) move from the whole batch's measurement
    for lx, ly in zip(x["layers"], y["layers"]):
        for key in ("lambda", "lambda_sparsity"):
            if key in lx["router"]:
                assert abs(lx["router"][key] - ly["router"][key]) <= 1e-6 * abs(lx["router"][key]), (x["step"], key, lx["router"][key], ly["router"][key])
    if "val_loss" in x:
        assert abs(x["val_loss"] - y["val_loss"]) / x["val_loss"] < 2e-3, (x["step"], x["val_loss"], y["val_loss"])
sa, sb = (json.load(open(f"{d}/summary.json")) for d in (a_dir, b_dir))
assert sa["tokens"] == sb["tokens"]
for la, lb in zip(sa["parity"]["layers"], sb["parity"]["layers"]):
    assert abs(la["mean_active_experts"] - lb["mean_active_experts"]) < 1e-2 * la["mean_active_experts"], (la, lb)
assert sa["parity"]["steps_measured"] == sb["parity"]["steps_measured"]
worst_load = 0.0
for la, lb in zip(sa["load"]["layers"], sb["load"]["layers"]):
    rel = abs(la["load_max_over_mean"] - lb["load_max_over_mean"]) / la["load_max_over_mean"]
    worst_load = max(worst_load, rel)
    assert rel <= max(load_tol, 1e-6), (la, lb)
with h5py.File(f"{a_dir}/routing_train.h5") as fa, h5py.File(f"{b_dir}/routing_train.h5") as fb:
    n = int(fa["train"].attrs["rows"])
    assert n == int(fb["train"].attrs["rows"]) == 4, n
    # every process's tokens are counted: as many as one process records
    assert np.array_equal(fa["train/n_tokens"][:n], fb["train/n_tokens"][:n]), (fa["train/n_tokens"][:n], fb["train/n_tokens"][:n])
    for layer in range(2):
        la, lb = fa[f"train/layer_{layer:02d}/load"][:n], fb[f"train/layer_{layer:02d}/load"][:n]
        worst_load = max(worst_load, float(np.abs(la - lb).max()))
        assert np.abs(la - lb).max() <= load_tol, (la, lb)
print(f"ok: {label}: 20 steps, worst relative lm_loss difference {worst:.2e}, worst load difference {worst_load:.2e}")
PY
}
