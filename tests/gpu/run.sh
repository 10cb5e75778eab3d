#!/usr/bin/env bash
# Runs the [gpu] Catch2 cases of one tests/gpu file (Catch's file-name tag "[#<file>]") for ctest.
# Exit 77 (ctest: skipped) where no CUDA device answers or dirmoe_gpu_tests is not built: `make
# build` leaves it out; `make gpu-tests`, `make test-all` and scripts/gpu_check.py build it.
# usage: tests/gpu/run.sh BINARY "[#test_gpu_file]"
set -uo pipefail
binary=${1:?BINARY}; tag=${2:?TAG}
if ! bash "$(dirname "$0")/../../scripts/cuda_device_present.sh"; then
  echo "no CUDA device: skipped"; exit 77
fi
if [ ! -x "$binary" ]; then
  echo "$binary is not built (make gpu-tests): skipped"; exit 77
fi
exec "$binary" --filenames-as-tags "[gpu]$tag"
