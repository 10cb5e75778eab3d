# Sourced by the gpu-labelled tests (tests/gpu/run.sh, tests/cli/test_*_gpu.sh): what they do when
# they cannot run. Elsewhere exit 77 (ctest: skipped); under DIRMOE_GPU_REQUIRED=1, which
# scripts/gpu_check.py sets on the GPU host, fail instead, so that a skip cannot hide a result.
gpu_skip() {
  if [ "${DIRMOE_GPU_REQUIRED:-0}" = 1 ]; then echo "FAIL: $1 (DIRMOE_GPU_REQUIRED=1)" >&2; exit 1; fi
  echo "$1: skipped"; exit 77
}
# gpu_skip unless a CUDA device answers (scripts/cuda_device_present.sh).
gpu_require_device() {
  bash "$(dirname "${BASH_SOURCE[0]}")/../../scripts/cuda_device_present.sh" || gpu_skip "no CUDA device"
}
