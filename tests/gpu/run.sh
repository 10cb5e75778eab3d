#!/usr/bin/env bash
# Runs the [gpu] Catch2 cases of one tests/gpu file (Catch's file-name tag "[#<file>]") for ctest.
# Exit 77 (ctest: skipped) where no CUDA device answers or dirmoe_gpu_tests is not built: `make
# build` leaves it out; `make test` builds it where a device answers, as do `make gpu-tests`,
# `make test-all` and scripts/gpu_check.py.
# usage: tests/gpu/run.sh BINARY "[#test_gpu_file]"
set -uo pipefail
binary=${1:?BINARY}; tag=${2:?TAG}
# DIRMOE_GPU_REQUIRED=1 (scripts/gpu_check.py sets it): a missing device or binary fails instead.
skip() {
  if [ "${DIRMOE_GPU_REQUIRED:-0}" = 1 ]; then echo "FAIL: $1 (DIRMOE_GPU_REQUIRED=1)" >&2; exit 1; fi
  echo "$1: skipped"; exit 77
}
bash "$(dirname "$0")/../../scripts/cuda_device_present.sh" || skip "no CUDA device"
[ -x "$binary" ] || skip "$binary is not built (make gpu-tests)"
exec "$binary" --filenames-as-tags "[gpu]$tag"
