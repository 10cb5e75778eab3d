#!/usr/bin/env bash
# Exit status 0 where a CUDA device answers (nvidia-smi lists one, or a /dev/nvidiaN node exists
# on an image without nvidia-smi), 1 elsewhere. Leaves the gpu-labelled tests out
# (scripts/ctest_label_filter.sh) or reports them as skipped (exit 77: tests/gpu/run.sh).
if command -v nvidia-smi >/dev/null 2>&1; then
  nvidia-smi -L >/dev/null 2>&1
else
  compgen -G '/dev/nvidia[0-9]*' >/dev/null
fi
