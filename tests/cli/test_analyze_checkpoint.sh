#!/usr/bin/env bash
# dirmoe-analyze --checkpoint end to end: a tiny DirMoE model trained for a few steps on the fixture
# corpus, analysed over the validation split; routing.h5 checked with h5py against the schema and
# the counting identity Σ_e tokens_per_expert = tokens × mean active experts; clear errors for a
# missing checkpoint or data directory. The training run also writes routing_train.h5 (train.stats_every).
set -uo pipefail
. "$(dirname "$0")/common.sh"
export OMP_NUM_THREADS=1

fixture_data "$TMP/data" --split 0.7,0.15,0.15 || fail "fixture data build"

"$BIN/dirmoe-train" --config "$SRC/experiments/configs/tiny_dirmoe.json" --out "$TMP/run" \
  --set data.dir="$TMP/data" --set model.d_model=32 --set model.n_layers=2 --set model.n_heads=2 \
  --set model.n_kv_heads=1 --set model.d_ff=64 --set model.seq_len=32 --set model.n_experts=4 --set model.n_experts_active=2 \
  --set train.batch_size=4 --set train.threads=1 --set train.log_every=1 --set train.eval_batches=1 \
  --set train.device=cpu --set train.max_steps=6 --set train.eval_every=0 --set train.ckpt_every=6 \
  --set train.stats_every=2 2>"$TMP/train.err" || { cat "$TMP/train.err"; fail "tiny training run"; }

# The trainer's routing time series: one row per stats_every steps, each the routing of that
# step's batch (4 windows × 32 tokens).
"$PY" - "$TMP/run/routing_train.h5" <<'PY' || fail "routing_train.h5"
import sys, h5py, numpy as np
with h5py.File(sys.argv[1], "r") as f:
    g = f["train"]
    rows = int(g.attrs["rows"])
    assert rows == 3, rows
    assert list(g["step"][:rows]) == [2, 4, 6], g["step"][()]
    assert list(g["n_tokens"][:rows]) == [128] * 3, g["n_tokens"][()]
    for l in range(2):
        load = g[f"layer_{l:02d}/load"][:rows]
        ek = g[f"layer_{l:02d}/active_experts"][:rows]
        assert load.shape == (3, 4) and np.allclose(load.sum(1), ek), (load, ek)
        assert np.all(g[f"layer_{l:02d}/token_simpson"][:rows] > 0)
print("ok: routing_train.h5 has rows at steps 2, 4, 6")
PY

# expect_fail NAME PATTERN CMD...: non-zero exit and PATTERN in stderr.
expect_fail() {
  local name="$1" pattern="$2"; shift 2
  if "$@" >"$TMP/out" 2>"$TMP/err"; then fail "$name: expected a non-zero exit"; fi
  grep -qF -- "$pattern" "$TMP/err" || { cat "$TMP/err" >&2; fail "$name: stderr lacks '$pattern'"; }
  echo "ok: $name -> $(head -c 200 "$TMP/err")"
}
expect_fail "missing checkpoint" "$TMP/nope" "$BIN/dirmoe-analyze" --checkpoint "$TMP/nope" --split validation \
  --tokens 100 --out "$TMP/x"
expect_fail "missing data dir" "$TMP/nodata" "$BIN/dirmoe-analyze" --checkpoint "$TMP/run" --split validation \
  --tokens 100 --out "$TMP/x" --data "$TMP/nodata"
expect_fail "bad split" "--split" "$BIN/dirmoe-analyze" --checkpoint "$TMP/run" --split test --tokens 100 --out "$TMP/x"

"$BIN/dirmoe-analyze" --checkpoint "$TMP/run" --split validation --tokens 1000 --batch-size 4 --trace-tokens 50 \
  --out "$TMP/an" 2>"$TMP/an.err" || { cat "$TMP/an.err"; fail "analyze"; }
cat "$TMP/an.err"
grep -q "analyze" "$TMP/an.err" || fail "no progress line"
for f in routing.h5 report.md report.json; do [ -s "$TMP/an/$f" ] || fail "missing $f"; done
grep -q "DirMoE calibration" "$TMP/an/report.md" || fail "report.md lacks the calibration table"

"$PY" - "$TMP/an" "$TMP/data" <<'PY' || fail "routing.h5 content"
import json, sys
import h5py, numpy as np
d, data = sys.argv[1], sys.argv[2]
with h5py.File(f"{d}/routing.h5", "r") as f:
    a = f.attrs
    assert a["router"] in ("dirmoe", b"dirmoe"), a["router"]
    assert int(a["step"]) == 6 and int(a["n_layers"]) == 2 and int(a["n_experts"]) == 4 and int(a["k_target"]) == 2
    cfg = json.loads(a["config"])
    assert cfg["model"]["d_model"] == 32
    assert len(str(a["git_rev"])) > 0
    domains = [x.decode() if isinstance(x, bytes) else x for x in f["domains"][()]]
    manifest = json.load(open(f"{data}/manifest.json"))
    assert len(domains) == len(manifest["domains"]) if isinstance(manifest.get("domains"), list) else len(domains) > 0
    E, Dn = 4, len(domains)
    T = 32
    for l in range(2):
        g = f[f"layer_{l:02d}"]
        n = int(g.attrs["n_tokens"])
        assert n == 1024, n  # 1000 tokens rounded up to whole windows of 32
        shapes = {"tokens_per_expert": (E,), "weight_per_expert": (E,), "active_experts_hist": (E + 1,),
                  "domain_expert_tokens": (Dn, E), "expert_coactivation": (E, E), "expert_domain_simpson": (E,),
                  "expert_domain_simpson_normalized": (E,), "domain_expert_simpson": (Dn,)}
        for name, shape in shapes.items():
            assert g[name].shape == shape, (l, name, g[name].shape, shape)
        hist = g["active_experts_hist"][()]
        assert hist.sum() == n, (hist.sum(), n)
        mean_k = (hist * np.arange(E + 1)).sum() / n
        tpe = g["tokens_per_expert"][()]
        assert abs(tpe.sum() - n * mean_k) < 0.5, (tpe.sum(), n * mean_k)
        assert np.array_equal(np.diag(g["expert_coactivation"][()]), tpe)
        # each token spreads unit mass over experts, summed per domain
        assert abs(g["domain_expert_tokens"][()].sum() - int(g["token_simpson"].attrs["count"])) < 1e-6 * n
        ts = g["token_simpson"]
        assert int(ts[()].sum()) == int(ts.attrs["count"])
        print(f"layer {l}: {n} tokens, mean active {mean_k:.3f}, Σ tokens_per_expert {tpe.sum()}, "
              f"token Simpson {float(ts.attrs['mean']):.3f}")
    tr = f["trace"]
    assert tr["token_ids"].shape == (50,) and tr["expert_ids"].shape[:2] == (2, 50), tr["expert_ids"].shape
j = json.load(open(f"{d}/report.json"))
assert j["step"] == 6 and "dirmoe_calibration" in j, list(j)
print("ok: routing.h5 schema, counting identity, trace and calibration")
PY
echo "ok"
