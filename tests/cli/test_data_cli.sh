#!/usr/bin/env bash
# dirmoe-data end to end on the fixture corpus: a build in seconds, verify, and each kind of bad
# input giving one clear message naming the file, a non-zero exit and no manifest.
set -uo pipefail
BIN="${DIRMOE_BIN_DIR:?}/dirmoe-data"
SRC="${DIRMOE_SOURCE_DIR:?}"
DATA="$SRC/tests/data"
TMP="$(mktemp -d)"
trap 'rm -rf "$TMP"' EXIT
fail() { echo "FAIL: $*" >&2; exit 1; }

# expect_fail NAME PATTERN CMD...: non-zero exit and PATTERN in stderr.
expect_fail() {
  local name="$1" pattern="$2"; shift 2
  if "$@" >"$TMP/out" 2>"$TMP/err"; then fail "$name: expected a non-zero exit"; fi
  grep -qF -- "$pattern" "$TMP/err" || { cat "$TMP/err" >&2; fail "$name: stderr lacks '$pattern'"; }
  echo "ok: $name -> $(head -c 200 "$TMP/err")"
}

OUT="$TMP/fixture"
"$BIN" build --out "$OUT" --source "$DATA/corpus/tree" --source "$DATA/corpus/jsonl/mixed.jsonl.gz" \
  --vocab-size 600 --split 0.7,0.15,0.15 --seed 3 >"$TMP/build.out" 2>"$TMP/build.err" \
  || { cat "$TMP/build.err" >&2; fail "fixture build"; }
cat "$TMP/build.out"
for f in manifest.json tokenizer.model train.bin train.idx validation.bin validation.idx heldout.bin heldout.idx; do
  [ -s "$OUT/$f" ] || [ "$f" = heldout.bin ] || fail "missing $OUT/$f"
done
grep -q '"dtype": "uint16"' "$OUT/manifest.json" || fail "manifest dtype"
grep -q '"weather"' "$OUT/manifest.json" || fail "manifest domains"
grep -q 'encode' "$TMP/build.err" || fail "no progress line"
"$BIN" verify "$OUT" | grep -q ok || fail "verify of a fresh build"

# nanoGPT-style reading: the .bin is a plain uint16 array whose length the manifest states.
"${DIRMOE_PYTHON:-python3}" - "$OUT" <<'PY' || fail "numpy read of train.bin"
import json, sys, numpy as np
d = sys.argv[1]
m = json.load(open(f"{d}/manifest.json"))
t = np.memmap(f"{d}/train.bin", dtype=np.uint16, mode="r")
assert len(t) == m["splits"]["train"]["n_tokens"], (len(t), m["splits"]["train"])
assert int(t.max()) < m["tokenizer"]["vocab_size"]
assert (t == m["tokenizer"]["eos_id"]).sum() == m["splits"]["train"]["n_documents"]
PY

# Reusing the tokenizer with another seed.
"$BIN" build --quiet --out "$TMP/reuse" --source "$DATA/corpus/tree" --tokenizer "$OUT/tokenizer.model" --seed 4 \
  --split 0.7,0.15,0.15 || fail "build with --tokenizer"
cmp -s "$OUT/tokenizer.model" "$TMP/reuse/tokenizer.model" || fail "--tokenizer not copied"

# Bad input.
expect_fail "missing source" "/nonexistent/corpus" "$BIN" build --quiet --out "$TMP/x1" --source /nonexistent/corpus
[ -e "$TMP/x1/manifest.json" ] && fail "manifest after a missing source"
expect_fail "malformed JSONL" "malformed.jsonl:3:" "$BIN" build --quiet --out "$TMP/x2" --source "$DATA/bad/malformed.jsonl"
[ -e "$TMP/x2/manifest.json" ] && fail "manifest after malformed JSONL"
expect_fail "vocabulary too large" "--vocab-size 60000" \
  "$BIN" build --quiet --out "$TMP/x3" --source "$DATA/corpus/tree" --vocab-size 60000
[ -e "$TMP/x3/manifest.json" ] && fail "manifest after a failed tokenizer"
expect_fail "bad split" "--split" "$BIN" build --quiet --out "$TMP/x4" --source "$DATA/corpus/tree" --split 0.5,0.5
ls -A "$TMP/x3" | grep -q -e tmp -e staging && fail "temporary files left behind"

# Invalid UTF-8 and empty documents are counted and reported, not fatal.
"$BIN" build --out "$TMP/bad_text" --source "$DATA/bad/tree" --source "$DATA/corpus/tree" --vocab-size 600 \
  --split 0.8,0.1,0.1 >"$TMP/bt.out" 2>&1 || { cat "$TMP/bt.out" >&2; fail "build with invalid UTF-8"; }
grep -q "empty skipped 1; documents with invalid UTF-8 1 (3 sequences replaced)" "$TMP/bt.out" || { cat "$TMP/bt.out"; fail "counts"; }

# Corrupted shards: a flipped byte (verify) and a truncated file (any open).
cp -r "$OUT" "$TMP/corrupt"
printf '\x5a' | dd of="$TMP/corrupt/train.bin" bs=1 seek=20 conv=notrunc status=none
expect_fail "flipped byte" "train.bin: sha256" "$BIN" verify "$TMP/corrupt"
truncate -s -2 "$TMP/corrupt/validation.bin"
expect_fail "truncated shard" "validation.bin:" "$BIN" verify "$TMP/corrupt"
rm "$TMP/corrupt/manifest.json"
expect_fail "no manifest" "no manifest.json" "$BIN" verify "$TMP/corrupt"
echo "all dirmoe-data CLI checks passed"
