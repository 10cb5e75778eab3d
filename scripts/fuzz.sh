#!/usr/bin/env bash
# Long fuzzing runs: every target in FUZZ_DIR/fuzz for SECONDS each, starting from the committed
# seeds plus what earlier runs found (FUZZ_DIR/fuzz-corpus/<target>, kept between runs). Crashing
# inputs land in FUZZ_DIR/fuzz-artifacts/; add each to tests/fuzz/corpus/<target>/ once fixed.
# Readers are held to DIRMOE_FUZZ_STRICT=1 here: any exception other than dirmoe::Error counts.
# usage: scripts/fuzz.sh FUZZ_DIR SECONDS [TARGET...]
set -uo pipefail
dir=${1:?FUZZ_DIR}; seconds=${2:?SECONDS}; shift 2
src="$(cd "$(dirname "$0")/.." && pwd)"
targets=("$@")
if ((${#targets[@]} == 0)); then
  for t in "$dir"/fuzz/fuzz_*; do targets+=("$(basename "$t" | sed 's/^fuzz_//')"); done
fi
mkdir -p "$dir/fuzz-artifacts"
failed=()
for t in "${targets[@]}"; do
  mkdir -p "$dir/fuzz-corpus/$t"
  echo "== fuzz_$t: ${seconds}s"
  DIRMOE_FUZZ_STRICT=1 "$dir/fuzz/fuzz_$t" -max_total_time="$seconds" -timeout=20 -rss_limit_mb=2048 \
    -print_final_stats=1 -artifact_prefix="$dir/fuzz-artifacts/$t-" \
    "$dir/fuzz-corpus/$t" "$src/tests/fuzz/corpus/$t" 2>"$dir/fuzz-artifacts/$t.log"
  rc=$?
  grep -E "stat::number_of_executed_units|Done [0-9]+ runs" "$dir/fuzz-artifacts/$t.log" | tail -n 2
  if [ $rc -ne 0 ]; then
    failed+=("$t")
    grep -E "ERROR|threw|runtime error" "$dir/fuzz-artifacts/$t.log" | head -n 3
  fi
done
if ((${#failed[@]})); then
  echo "fuzz: findings in: ${failed[*]} (inputs and logs in $dir/fuzz-artifacts)" >&2
  exit 1
fi
echo "fuzz: no findings"
