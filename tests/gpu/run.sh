#!/usr/bin/env bash
# Runs the [gpu] Catch2 cases of one tests/gpu file (Catch's file-name tag "[#<file>]") for ctest.
# Exit 77 (ctest: skipped) where no CUDA device answers or dirmoe_gpu_tests is not built: `make
# build` leaves it out; `make test` builds it where a device answers, as do `make gpu-tests`,
# `make test-all` and scripts/gpu_check.py.
# usage: tests/gpu/run.sh BINARY "[#test_gpu_file]"
set -uo pipefail
binary=${1:?BINARY}; tag=${2:?TAG}
. "$(dirname "$0")/skip.sh"
gpu_require_device
[ -x "$binary" ] || gpu_skip "$binary is not built (make gpu-tests)"
exec "$binary" --filenames-as-tags "[gpu]$tag"
