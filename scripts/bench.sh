#!/usr/bin/env bash
# make bench: speed figures, measured (never asserted), against the goals of bench/README.md. bench/run_bench.py
# runs build/bin/bench_suite, bench/reference_model.py, dirmoe-train/-eval/-data and writes
# bench/results.json and bench/results.md (printed at the end). Options pass through, e.g.
#   bash scripts/bench.sh --scales tiny --repeats 2
# DIRMOE_BENCH_DATA names the corpus for the eval figure (default data/default).
set -euo pipefail
cd "$(dirname "$0")/.."
exec .venv/bin/python bench/run_bench.py "$@"
