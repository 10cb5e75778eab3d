#!/usr/bin/env bash
# Installs everything dirmoe needs on a fresh Debian machine: the Debian build dependencies, the
# Debian packages whose text forms the default corpus, and the Python venv (torch = LibTorch).
# Idempotent: already-present packages are skipped, so a re-run is cheap.
set -euo pipefail
cd "$(dirname "$0")/.."

# Each phase's wall time, printed as it ends and summed at the end (README "Two commands").
phase_started=$SECONDS
phase_times=()
end_phase() {
  local seconds=$((SECONDS - phase_started))
  phase_times+=("$1 ${seconds}s")
  echo "setup: $1 took ${seconds}s"
  phase_started=$SECONDS
}

build_pkgs=(build-essential cmake ninja-build ccache pkg-config git
            libcli11-dev nlohmann-json3-dev libfmt-dev libhdf5-dev catch2
            libsentencepiece-dev zlib1g-dev libzstd-dev python3-venv
            libgloo-dev   # Gloo headers: the torch wheel ships ProcessGroupGloo.hpp without them
            clang libclang-rt-14-dev)  # libFuzzer + sanitizer runtimes for tests/fuzz
# Text the default corpus is assembled from (see lib/src/data/default_corpus.cpp).
corpus_pkgs=(python3-doc linux-doc dict-gcide fortunes wordnet-base)

missing=()
for p in "${build_pkgs[@]}" "${corpus_pkgs[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if ((${#missing[@]})); then
  sudo_cmd=""
  [ "$(id -u)" -eq 0 ] || sudo_cmd="sudo"
  echo "setup: installing Debian packages: ${missing[*]}"
  $sudo_cmd apt-get update -q
  DEBIAN_FRONTEND=noninteractive $sudo_cmd apt-get install -y -q --no-install-recommends "${missing[@]}"
fi
end_phase apt

if [ ! -x .venv/bin/python ]; then
  echo "setup: creating .venv"
  python3 -m venv .venv
fi
# One resolve over both files: requirements-eval.txt (lm-eval-harness, transformers) must not move
# the torch that the C++ build links against.
if ! .venv/bin/python -m pip install -q --disable-pip-version-check -r requirements.txt -r requirements-eval.txt; then
  echo "setup: pip install failed; check the network access to PyPI and rerun 'make setup'" >&2
  exit 1
fi
.venv/bin/python -c "import torch, h5py, numpy, matplotlib, transformers, lm_eval; print('setup: torch', torch.__version__, '| transformers', transformers.__version__)"
end_phase venv
echo "setup: done (${phase_times[*]})"
