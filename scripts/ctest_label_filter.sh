#!/usr/bin/env bash
# Prints the ctest label filter: GPU tests only where a CUDA device answers; slow tests only with "all".
have_gpu=0
if bash "$(dirname "$0")/cuda_device_present.sh"; then have_gpu=1; fi
exclude=()
[ "$have_gpu" = 1 ] || exclude+=(gpu)
[ "${1:-}" = all ] || exclude+=(slow)
if ((${#exclude[@]})); then
  (IFS='|'; echo "-LE ${exclude[*]}")
fi
