#!/usr/bin/env bash
# dirmoe-eval end to end: fixture corpus → a few training steps of a tiny Switch model → every
# fixture task plus the built-in held-out tasks → JSON + markdown, a side-by-side table, an export
# that Python's safetensors reads, and clear errors for a missing task file and a bad one.
set -uo pipefail
. "$(dirname "$0")/common.sh"
if [ ! -x "$BIN/dirmoe-train" ] || [ ! -x "$BIN/dirmoe-data" ]; then
  echo "SKIP: dirmoe-eval end to end needs dirmoe-data and dirmoe-train in $BIN"; exit 0
fi

fixture_data "$TMP/data" --split 0.6,0.2,0.2 >"$TMP/data.log" 2>&1 || { cat "$TMP/data.log" >&2; fail "data build"; }
"$BIN/dirmoe-train" --config "$SRC/experiments/configs/tiny_switch.json" --out "$TMP/run" \
  --set data.dir="$TMP/data" --set train.max_steps=4 --set train.device=cpu --set train.eval_every=0 \
  --set train.ckpt_every=4 --set router.topk.renormalize=true >"$TMP/train.log" 2>&1 \
  || { tail -20 "$TMP/train.log" >&2; fail "train"; }

TASKS=arc_easy,arc_challenge,boolq,hellaswag,lambada_openai,piqa,race,winogrande,openbookqa,sciq,heldout_cloze,heldout_choice
"$BIN/dirmoe-eval" --checkpoint "$TMP/run" --tasks "$TASKS" --task-dir "$SRC/tests/data/tasks" \
  --data "$TMP/data" --device cpu --set eval.heldout_examples=20 --set eval.validation_tokens=2000 \
  --out "$TMP/a.json" --log-samples "$TMP/a.jsonl" >"$TMP/eval.out" 2>"$TMP/eval.err" || { cat "$TMP/eval.err" >&2; fail "eval"; }
[ -s "$TMP/a.md" ] || fail "no markdown beside the JSON"
"$PY" - "$TMP/a.json" <<'PYEOF' || fail "eval JSON content"
import json, sys
r = json.load(open(sys.argv[1]))
tasks = r["tasks"]
assert len(tasks) == 12, sorted(tasks)
for name, t in tasks.items():
    assert t["n"] > 0 and "acc" in t["metrics"], name
    assert 0.0 <= t["metrics"]["acc"]["value"] <= 1.0
    assert t["prompt_version"], name
assert "perplexity" in tasks["lambada_openai"]["metrics"]
assert "acc_norm" in tasks["arc_easy"]["metrics"] and "acc_norm" not in tasks["boolq"]["metrics"]
assert r["validation"]["perplexity"] > 1.0
assert r["git_revision"] and r["config"]["model"]["vocab_size"] > 0
assert r["throughput"]["tokens_per_second"] > 0
# --log-samples: one line per scored document of every task, one log-likelihood per continuation,
# and the item's acc averaging to the task's
items = [json.loads(l) for l in open(sys.argv[1][:-5] + ".jsonl")]
assert len(items) == sum(t["n"] for t in tasks.values()), len(items)
for name, t in tasks.items():
    mine = [i for i in items if i["task"] == name]
    assert len(mine) == t["n"], (name, len(mine))
    assert abs(sum(i["acc"] for i in mine) / len(mine) - t["metrics"]["acc"]["value"]) < 1e-9, name
for i in items:
    assert i["loglikelihoods"] and all(x <= 0.0 for x in i["loglikelihoods"]), i
    assert len(i["loglikelihoods"]) == len(i["continuations"]) == len(i["is_greedy"]), i
PYEOF
grep -q "heldout_cloze" "$TMP/eval.err" || fail "no progress/summary line"

# the same evaluation is deterministic
"$BIN/dirmoe-eval" --checkpoint "$TMP/run" --tasks arc_easy,heldout_choice --task-dir "$SRC/tests/data/tasks" \
  --data "$TMP/data" --device cpu --set eval.heldout_examples=20 --set eval.validation_tokens=0 --out "$TMP/b.json" \
  >/dev/null 2>&1 || fail "second eval"
"$PY" - "$TMP/a.json" "$TMP/b.json" <<'PYEOF' || fail "non-deterministic results"
import json, sys
a, b = (json.load(open(p))["tasks"] for p in sys.argv[1:])
for t in ("arc_easy", "heldout_choice"):
    assert a[t]["metrics"] == b[t]["metrics"], t
PYEOF

"$BIN/dirmoe-eval" table "$TMP/a.json" "$TMP/b.json" >"$TMP/table.md" || fail "table"
grep -q "| task | metric | a | b |" "$TMP/table.md" || { cat "$TMP/table.md"; fail "table header"; }

# errors: missing task file names the file; a bad file names file and line
if "$BIN/dirmoe-eval" --checkpoint "$TMP/run" --tasks piqa --task-dir "$TMP" --data "$TMP/data" --out "$TMP/x.json" \
  2>"$TMP/err"; then fail "missing task file accepted"; fi
grep -q "piqa.jsonl" "$TMP/err" || { cat "$TMP/err"; fail "missing file not named"; }
mkdir -p "$TMP/bad" && printf '{"goal": "g", "sol1": "a", "sol2": "b", "label": 0}\n{"goal": "g"}\n' >"$TMP/bad/piqa.jsonl"
if "$BIN/dirmoe-eval" --checkpoint "$TMP/run" --tasks piqa --task-dir "$TMP/bad" --data "$TMP/data" \
  --out "$TMP/x.json" 2>"$TMP/err"; then fail "bad task file accepted"; fi
grep -q "piqa.jsonl:2: missing field" "$TMP/err" || { cat "$TMP/err"; fail "bad line not named"; }
[ -e "$TMP/x.json" ] && fail "output written after an error"

# export: Mixtral layout readable by the safetensors package
"$BIN/dirmoe-eval" export --checkpoint "$TMP/run" --out "$TMP/export" --data "$TMP/data" 2>"$TMP/export.err" \
  || { cat "$TMP/export.err"; fail "export"; }
[ -s "$TMP/export/tokenizer.model" ] || fail "tokenizer not exported"
"$PY" - "$TMP/export" <<'PYEOF' || fail "export content"
import json, sys
from safetensors.torch import load_file
d = sys.argv[1]
cfg = json.load(open(f"{d}/config.json"))
w = load_file(f"{d}/model.safetensors")
assert cfg["model_type"] == "mixtral", cfg["model_type"]
assert w["model.embed_tokens.weight"].shape == (cfg["vocab_size"], cfg["hidden_size"])
assert w["model.layers.0.block_sparse_moe.experts.0.w1.weight"].shape == (cfg["intermediate_size"], cfg["hidden_size"])
PYEOF
echo "ok: dirmoe-eval end to end"

# --train-rule-draws (docs/dirmoe.md H10): the validation loss with the router's training rule beside the
# evaluation rule. The evaluation-rule figure is the same loss the validation block computes by another
# path (ModelScorer's sequence_nll); Switch has no router noise, so its two rules agree exactly; DirMoE's
# training rule draws noise (its draws differ), reproducibly.
"$BIN/dirmoe-train" --config "$SRC/experiments/configs/tiny_dirmoe.json" --out "$TMP/dir" \
  --set data.dir="$TMP/data" --set train.max_steps=4 --set train.device=cpu --set train.eval_every=0 \
  --set train.ckpt_every=4 >"$TMP/train_dir.log" 2>&1 || { tail -20 "$TMP/train_dir.log" >&2; fail "train dirmoe"; }
for run in run dir; do
  for k in 1 2; do
    "$BIN/dirmoe-eval" --checkpoint "$TMP/$run" --tasks heldout_cloze --data "$TMP/data" --device cpu \
      --set eval.heldout_examples=4 --set eval.validation_tokens=2000 --train-rule-draws 3 \
      --out "$TMP/rules_${run}_$k.json" 2>"$TMP/rules.err" || { cat "$TMP/rules.err" >&2; fail "eval --train-rule-draws ($run)"; }
  done
done
grep -q "validation loss: evaluation rule" "$TMP/rules.err" || fail "no router-rule line on stderr"
"$PY" - "$TMP" <<'PYEOF' || fail "router rules"
import json, sys
d = sys.argv[1]
sw, sw2, dm, dm2 = (json.load(open(f"{d}/rules_{r}_{k}.json")) for r, k in (("run", 1), ("run", 2), ("dir", 1), ("dir", 2)))
for r in (sw, dm):
    rr = r["router_rules"]
    assert abs(rr["eval_rule"]["nll"] - r["validation"]["nll"]) < 1e-5, (rr["eval_rule"]["nll"], r["validation"]["nll"])
    assert rr["train_rule"]["draws"] == 3 and rr["eval_rule"]["draws"] == 1
    assert rr["train_rule"]["tokens"] == rr["eval_rule"]["tokens"] == r["validation"]["tokens"]
    for rule in ("eval_rule", "train_rule"):
        w = rr[rule]["dispatched_weight_per_layer"]
        assert len(w) == r["config"]["model"]["n_layers"] and all(0 < x <= 1 for x in w), w
s = sw["router_rules"]
assert s["train_rule"]["nll"] == s["eval_rule"]["nll"] and s["train_rule"]["nll_std"] == 0.0, s
m = dm["router_rules"]
assert m["train_rule"]["nll_std"] > 0, m
assert m["train_rule"]["nll"] == dm2["router_rules"]["train_rule"]["nll"], "training-rule draws are not reproducible"
print(f"ok: router rules: switch {s['eval_rule']['nll']:.4f} both; dirmoe eval {m['eval_rule']['nll']:.4f}, "
      f"train {m['train_rule']['nll']:.4f} ± {m['train_rule']['nll_std']:.4f}")
PYEOF
