#!/usr/bin/env bash
# make bench: speed figures, measured (never asserted). Each benchmark prints its configuration,
# threads and device; this script adds the git revision and keeps a copy in bench/results.txt.
set -euo pipefail
cd "$(dirname "$0")/.."
bin=build/bin
out=bench/results.txt
{
  echo "# dirmoe benchmarks — $(git describe --always --dirty 2>/dev/null || echo unknown) — $(date -u +%FT%TZ) — $(nproc) cores"
  echo
  echo "## MoE layer (E=8, k=1) vs dense SwiGLU FFN of the same active size, forward+backward"
  "$bin/bench_moe_layer" --d-model 512 --d-ff 2048 --tokens 4096 --experts 8 --repeats 5
  echo
  echo "## Evaluation scoring throughput (tiny decoder)"
  "$bin/bench_eval_scoring"
} 2>&1 | tee "$out"
echo "bench: figures kept in $out"
