# Thin entry points; the work is in CMake and the scripts they call.
#   make test   set-up + build + the test suite (CI runs it, then `make build-extras`)
#   make demo   set-up + build + default corpus + a short train of each router + eval + analyze + report
#   make fuzz   the libFuzzer targets of tests/fuzz, FUZZ_SECONDS each (make test replays their corpora)
SHELL := /bin/bash
PYTHON ?= .venv/bin/python
BUILD_DIR ?= build
BUILD_TYPE ?= Release
JOBS ?= $(shell nproc)
FUZZ_DIR ?= build-fuzz
FUZZ_SECONDS ?= 300
SETUP_STAMP := .venv/.dirmoe-setup-$(shell cat requirements.txt requirements-eval.txt scripts/setup.sh 2>/dev/null | sha1sum | cut -c1-12)

.PHONY: setup build build-extras gpu-tests test test-all fuzz-smoke test-asan fuzz fuzz-build demo bench gpu-deps gpu-check gpu-check-dry-run format clean

setup: $(SETUP_STAMP)

$(SETUP_STAMP): requirements.txt requirements-eval.txt scripts/setup.sh
	bash scripts/setup.sh
	touch $@

$(BUILD_DIR)/build.ninja: $(SETUP_STAMP) CMakeLists.txt
	@started=$$SECONDS; set -e; \
	cmake -S . -B $(BUILD_DIR) -G Ninja -DCMAKE_BUILD_TYPE=$(BUILD_TYPE) \
	  -DCMAKE_PREFIX_PATH="$$($(PYTHON) -c 'import torch.utils; print(torch.utils.cmake_prefix_path)')"; \
	echo "setup: configure took $$((SECONDS - started))s"

build: $(BUILD_DIR)/build.ninja
	@started=$$SECONDS; cmake --build $(BUILD_DIR) -j $(JOBS) && echo "build: took $$((SECONDS - started))s"

# What `make build` leaves out because `make test` runs none of it: the benchmarks (make bench) and
# the CUDA tests (make gpu-check on a GPU host). CI compiles them after the suite (.ci/run).
build-extras: build
	cmake --build $(BUILD_DIR) -j $(JOBS) --target dirmoe_bench dirmoe_gpu_tests

gpu-tests: $(BUILD_DIR)/build.ninja
	cmake --build $(BUILD_DIR) -j $(JOBS) --target dirmoe_gpu_tests

# Quick suite: unit + cli + python reference checks + the fuzz targets' corpora replayed through a
# plain driver. GPU tests are built and run only where a CUDA device answers (plain ctest elsewhere
# reports them as skipped).
test: build
	if bash scripts/cuda_device_present.sh; then cmake --build $(BUILD_DIR) -j $(JOBS) --target dirmoe_gpu_tests; fi
	cd $(BUILD_DIR) && ctest --output-on-failure -j $(JOBS) $$(../scripts/ctest_label_filter.sh)

# The instrumented fuzz build's own smoke (ASan/UBSan replay of the corpora + a few seconds of
# fuzzing per target): CI runs it after make test (.ci/run); make test replays without sanitizers.
fuzz-smoke: fuzz-build
	cd $(FUZZ_DIR) && ctest --output-on-failure -j $(JOBS) -L fuzz

# The fuzz targets: clang + libFuzzer + ASan/UBSan over the reader sources only (tests/fuzz/CMakeLists.txt).
$(FUZZ_DIR)/build.ninja: $(SETUP_STAMP) CMakeLists.txt tests/fuzz/CMakeLists.txt
	cmake -S . -B $(FUZZ_DIR) -G Ninja -DCMAKE_BUILD_TYPE=RelWithDebInfo -DDIRMOE_FUZZ=ON \
	  -DCMAKE_C_COMPILER=clang -DCMAKE_CXX_COMPILER=clang++ \
	  -DCMAKE_PREFIX_PATH="$$($(PYTHON) -c 'import torch.utils; print(torch.utils.cmake_prefix_path)')"

fuzz-build: $(FUZZ_DIR)/build.ninja
	cmake --build $(FUZZ_DIR) -j $(JOBS)

fuzz: fuzz-build
	bash scripts/fuzz.sh $(FUZZ_DIR) $(FUZZ_SECONDS)

# Everything, slow tests included (and the benchmarks and CUDA tests compiled).
test-all: build-extras
	cd $(BUILD_DIR) && ctest --output-on-failure -j $(JOBS) $$(../scripts/ctest_label_filter.sh all)

test-asan: setup
	$(MAKE) BUILD_DIR=build-asan BUILD_TYPE=RelWithDebInfo build-asan-configure
	cmake --build build-asan -j $(JOBS)
	cd build-asan && ASAN_OPTIONS=detect_leaks=0 UBSAN_OPTIONS=halt_on_error=1:print_stacktrace=1 \
	  ctest --output-on-failure -j $(JOBS) -LE 'gpu|slow'

# NOTE: with the precompiled header: LibTorch's headers are parsed once, and without it c10's glog-style CHECK
# macro replaces Catch's CHECK in test files that include catch.hpp before torch.h.
build-asan-configure:
	cmake -S . -B build-asan -G Ninja -DCMAKE_BUILD_TYPE=RelWithDebInfo -DDIRMOE_SANITIZE=ON -DDIRMOE_USE_PCH=ON \
	  -DCMAKE_PREFIX_PATH="$$($(PYTHON) -c 'import torch.utils; print(torch.utils.cmake_prefix_path)')"

demo: build
	bash scripts/demo.sh

bench: build
	cmake --build $(BUILD_DIR) -j $(JOBS) --target dirmoe_bench
	bash scripts/bench.sh

# The CUDA path in one command on a GPU host with torch but no package registry (README "Several
# processes and GPUs"): `make gpu-deps` where apt works, carry .deps/, then `make gpu-check` there.
# No setup or build first: the host has no registry, and gpu-check builds what it runs itself.
# Options go through ARGS, e.g. make gpu-check ARGS="--dry-run" or ARGS="--budget 420".
gpu-deps:
	bash scripts/gpu_deps.sh

gpu-check:
	bash scripts/gpu_check.sh $(ARGS)

gpu-check-dry-run:
	bash scripts/gpu_check.sh --dry-run $(ARGS)

format:
	find lib apps tests bench -name '*.h' -o -name '*.cpp' | xargs clang-format -i

clean:
	rm -rf $(BUILD_DIR) build-asan build-gpu $(FUZZ_DIR)
