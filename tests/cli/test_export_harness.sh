#!/usr/bin/env bash
# The exported checkpoint in the tools researchers use: for a tiny trained checkpoint of each
# router (Switch without renormalisation, ReMoE, SparseMixer-v2, DirMoE), `dirmoe-eval export`
# writes the transformers remote code and tokenizer files, and
#   1. AutoTokenizer encodes every document of the fixture corpus to dirmoe's SentencePiece ids;
#   2. lm-eval-harness 0.4.13 (its Python API, its own task definitions over local copies of the
#      task fixtures, the model loaded with trust_remote_code) agrees with
#      `dirmoe-eval --log-samples` on every item of the ten tasks: the same requests,
#      log-likelihoods to 1e-4, identical is_greedy, acc and acc_norm.
# Nothing is downloaded (HF_HUB_OFFLINE, HF_DATASETS_OFFLINE).
set -uo pipefail
. "$(dirname "$0")/common.sh"
if [ ! -x "$BIN/dirmoe-train" ] || [ ! -x "$BIN/dirmoe-data" ]; then
  echo "SKIP: needs dirmoe-data and dirmoe-train in $BIN"; exit 0
fi
export HF_HUB_OFFLINE=1 HF_DATASETS_OFFLINE=1 HF_HOME="$TMP/hf_home" TRANSFORMERS_VERBOSITY=error

fixture_data "$TMP/data" --split 0.6,0.2,0.2 >"$TMP/data.log" 2>&1 || { cat "$TMP/data.log" >&2; fail "data build"; }
"$PY" "$SRC/tests/cli/tasks_to_hf_layout.py" "$SRC/tests/data/tasks" "$TMP/tasks" || fail "task fixtures to the HF layout"

TASKS=arc_easy,arc_challenge,boolq,hellaswag,lambada_openai,piqa,race,winogrande,openbookqa,sciq
specs=()
for router in switch remoe sparsemixer dirmoe; do
  "$BIN/dirmoe-train" --config "$SRC/experiments/configs/tiny_$router.json" --out "$TMP/run_$router" \
    --set data.dir="$TMP/data" --set train.max_steps=6 --set train.device=cpu --set train.eval_every=0 \
    --set train.ckpt_every=6 --set train.batch_size=4 --set model.seq_len=64 >"$TMP/train_$router.log" 2>&1 \
    || { tail -20 "$TMP/train_$router.log" >&2; fail "train $router"; }
  "$BIN/dirmoe-eval" export --checkpoint "$TMP/run_$router" --out "$TMP/export_$router" --data "$TMP/data" \
    2>"$TMP/export_$router.err" || { cat "$TMP/export_$router.err" >&2; fail "export $router"; }
  for f in config.json model.safetensors configuration_dirmoe.py modeling_dirmoe.py tokenizer.json tokenizer_config.json; do
    [ -s "$TMP/export_$router/$f" ] || fail "export $router: no $f"
  done
  "$BIN/dirmoe-eval" --checkpoint "$TMP/run_$router" --tasks "$TASKS" --task-dir "$TMP/tasks" --data "$TMP/data" \
    --device cpu --set eval.validation_tokens=0 --log-samples "$TMP/samples_$router.jsonl" --out "$TMP/eval_$router.json" \
    >/dev/null 2>"$TMP/eval_$router.err" || { cat "$TMP/eval_$router.err" >&2; fail "eval $router"; }
  specs+=("$router=$TMP/export_$router=$TMP/samples_$router.jsonl")
done
[ -s "$TMP/samples_dirmoe.config.json" ] || fail "no config beside the sample log"
grep -q '"log_samples"' "$TMP/eval_dirmoe.json" || fail "the eval report does not name its sample log"

"$PY" "$SRC/tests/cli/hf_tokenizer_check.py" "$TMP/data" "$TMP/export_dirmoe" || fail "AutoTokenizer ids differ"
"$PY" "$SRC/tests/cli/harness_compare.py" "$TMP/tasks" "$TMP" "${specs[@]}" || fail "lm-eval-harness and dirmoe-eval disagree"
echo "ok: exported checkpoints under transformers and lm-eval-harness"
