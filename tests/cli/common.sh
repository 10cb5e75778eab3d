# Sourced by the CLI tests (tests/cli/test_*.sh), after `set -uo pipefail`:
#   BIN, SRC, PY   the build's bin directory, the source tree and the venv's python (from ctest's
#                  DIRMOE_BIN_DIR, DIRMOE_SOURCE_DIR, DIRMOE_PYTHON)
#   DATA_SRC       the fixture corpus (tests/data/corpus)
#   TMP            a fresh temporary directory, removed on exit unless KEEP_TMP is set
#   fail MSG       prints "FAIL: MSG" and exits 1
#   on_exit        runs first on exit; a script that leaves work in the background redefines it
#   fixture_data OUT ARGS...   builds the fixture corpus (600-token vocabulary, seed 3) into OUT;
#                  ARGS (e.g. --split) follow, output is quiet
BIN="${DIRMOE_BIN_DIR:?}"
SRC="${DIRMOE_SOURCE_DIR:?}"
PY="${DIRMOE_PYTHON:-python3}"
DATA_SRC="$SRC/tests/data/corpus"
TMP="$(mktemp -d)"

fail() { echo "FAIL: $*" >&2; exit 1; }
on_exit() { :; }
trap 'on_exit; [ -n "${KEEP_TMP:-}" ] || rm -rf "$TMP"' EXIT

fixture_data() {
  local out=$1
  shift
  "$BIN/dirmoe-data" build --quiet --out "$out" --source "$DATA_SRC/tree" --source "$DATA_SRC/jsonl/mixed.jsonl.gz" \
    --vocab-size 600 --seed 3 "$@"
}
