#!/usr/bin/env bash
# analysis/plot_routing.py draws every figure from HDF5 files alone (written here by h5py) and
# refuses a file that is not a dirmoe file.
set -euo pipefail
PY=${DIRMOE_PYTHON:?}
SRC=${DIRMOE_SOURCE_DIR:-$(cd "$(dirname "$0")/../.." && pwd)}
T=$(mktemp -d)
trap 'rm -rf "$T"' EXIT
fail() { echo "FAIL: $*" >&2; exit 1; }

"$PY" "$SRC/tests/cli/make_routing_h5.py" "$T/routing.h5" --router dirmoe --layers 3 --experts 6 > /dev/null
"$PY" "$SRC/tests/cli/make_routing_h5.py" "$T/routing_train.h5" --train --layers 3 --experts 6 --steps 30
"$PY" "$SRC/analysis/plot_routing.py" "$T/routing.h5" --train "$T/routing_train.h5" --out "$T/plots" > "$T/list.txt"
for name in expert_domain_layer_00 expert_domain_layer_01 expert_domain_layer_02 token_simpson train_load \
            train_active_experts; do
  f="$T/plots/$name.png"
  [ -s "$f" ] || fail "missing $f"
  [ "$(head -c 8 "$f" | od -An -tx1 | tr -d ' \n')" = "89504e470d0a1a0a" ] || fail "$f is not a PNG"
  grep -qF "$f" "$T/list.txt" || fail "$f not listed"
done
"$PY" -c "import h5py; h5py.File('$T/foreign.h5', 'w')['x'] = [1, 2]"
if "$PY" "$SRC/analysis/plot_routing.py" "$T/foreign.h5" --out "$T/p2" 2> "$T/err.txt"; then fail "foreign file accepted"; fi
grep -q "foreign.h5: not a dirmoe" "$T/err.txt" || fail "message: $(cat "$T/err.txt")"
echo OK
