#!/usr/bin/env bash
# dirmoe-eval on CUDA scores every document as on the CPU: the summed log-likelihood of each
# request (--log-samples) agrees to 1e-3 and acc/acc_norm are the same, for multiple-choice tasks,
# a LAMBADA-style task and the built-in held-out tasks; validation perplexity to 1e-4 relative.
# [gpu]: label gpu (the _gpu suffix), run by scripts/gpu_check.py where a CUDA device answers.
set -uo pipefail
. "$(dirname "$0")/../gpu/skip.sh"
gpu_require_device
. "$(dirname "$0")/common.sh"
fixture_data "$TMP/data" --split 0.6,0.2,0.2 >"$TMP/data.log" 2>&1 || { cat "$TMP/data.log" >&2; fail "data build"; }
"$BIN/dirmoe-train" --config "$SRC/experiments/configs/tiny_switch.json" --out "$TMP/run" \
  --set data.dir="$TMP/data" --set train.max_steps=20 --set train.device=cpu --set train.eval_every=0 \
  --set train.ckpt_every=20 >"$TMP/train.log" 2>&1 || { tail -20 "$TMP/train.log" >&2; fail "train"; }

TASKS=arc_easy,hellaswag,lambada_openai,piqa,winogrande,heldout_cloze,heldout_choice
for device in cpu cuda; do
  "$BIN/dirmoe-eval" --checkpoint "$TMP/run" --tasks "$TASKS" --task-dir "$SRC/tests/data/tasks" \
    --data "$TMP/data" --device "$device" --set eval.heldout_examples=40 --set eval.validation_tokens=4000 \
    --out "$TMP/$device.json" --log-samples "$TMP/$device.jsonl" >/dev/null 2>"$TMP/$device.err" \
    || { cat "$TMP/$device.err" >&2; fail "eval on $device"; }
done
"$PY" - "$TMP/cpu" "$TMP/cuda" <<'PYEOF' || fail "CUDA and CPU scores differ"
import json, sys
cpu, cuda = ([json.loads(l) for l in open(p + ".jsonl")] for p in sys.argv[1:])
assert len(cpu) == len(cuda) > 0, (len(cpu), len(cuda))
worst = 0.0
for a, b in zip(cpu, cuda):
    assert (a["task"], a["doc_id"]) == (b["task"], b["doc_id"]), (a, b)
    assert len(a["loglikelihoods"]) == len(b["loglikelihoods"]) > 0, (a, b)
    for x, y in zip(a["loglikelihoods"], b["loglikelihoods"]):
        worst = max(worst, abs(x - y))
        assert abs(x - y) <= 1e-3, (a["task"], a["doc_id"], x, y)
    assert (a.get("acc"), a.get("acc_norm")) == (b.get("acc"), b.get("acc_norm")), (a, b)
ra, rb = (json.load(open(p + ".json")) for p in sys.argv[1:])
assert rb["device"].startswith("cuda"), rb["device"]
pa, pb = ra["validation"]["perplexity"], rb["validation"]["perplexity"]
assert abs(pa - pb) <= 1e-4 * pa, (pa, pb)
print(f"{len(cpu)} documents, largest |LL cpu - LL cuda| = {worst:.2e}; perplexity {pa:.4f} vs {pb:.4f}")
PYEOF
echo "ok: dirmoe-eval on CUDA matches the CPU"
