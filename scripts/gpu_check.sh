#!/usr/bin/env bash
# make gpu-check: build the CUDA checks and run them, then a short 185M benchmark, within a time
# budget, into one JSON report (scripts/gpu_check.py says what each stage does). On a GPU host:
#   scripts/gpu_check.sh                  everything; report in $OUT (when set) or build-gpu/
#   scripts/gpu_check.sh --dry-run        the plan and the commands, nothing run
#   scripts/gpu_check.sh --help           every option (budget, stages, routers, steps)
# The host's python3 runs it (it needs only the standard library); without one that imports
# torch, the project's .venv is used.
set -euo pipefail
cd "$(dirname "$0")/.."
py=python3
if ! python3 -c 'import torch' >/dev/null 2>&1 && [ -x .venv/bin/python ]; then py=.venv/bin/python; fi
exec "$py" scripts/gpu_check.py "$@"
