"""scripts/gpu_check.py's configure path against the carried Debian prefix (.deps, made by
scripts/gpu_deps.sh), on this machine: preflight and configure run for real (--allow-no-gpu), and
every dependency the build takes from outside torch must resolve inside the prefix, none from the
system, because the GPU host has nothing else. Exits 77 (ctest: skipped) when .deps is absent.

    python tests/scripts/test_gpu_check_configure.py      (ctest: script:gpu_check_configure)
"""
import json
import os
import subprocess
import sys
import tempfile

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
DEPS = os.path.join(ROOT, ".deps")
# CMake cache entries that must point into the prefix.
FROM_PREFIX = ["fmt_DIR", "CLI11_DIR", "nlohmann_json_DIR", "Catch2_DIR", "HDF5_C_INCLUDE_DIR", "HDF5_CXX_INCLUDE_DIR",
               "HDF5_hdf5_LIBRARY_RELEASE", "HDF5_hdf5_cpp_LIBRARY_RELEASE", "DIRMOE_sentencepiece_INCLUDE_DIR",
               "DIRMOE_sentencepiece_sentencepiece_LIBRARY", "DIRMOE_sentencepiece_sentencepiece_train_LIBRARY",
               "DIRMOE_libzstd_INCLUDE_DIR", "DIRMOE_libzstd_zstd_LIBRARY",
               "ZLIB_INCLUDE_DIR", "ZLIB_LIBRARY_RELEASE", "DIRMOE_GLOO_INCLUDE_DIR"]


def main():
    if not os.path.exists(os.path.join(DEPS, "root", "usr", "include", "fmt", "format.h")):
        print(f"SKIP: no prefix at {DEPS} (make it with scripts/gpu_deps.sh)")
        return 77
    with tempfile.TemporaryDirectory() as d:
        build, out = os.path.join(d, "build"), os.path.join(d, "out")
        p = subprocess.run([sys.executable, os.path.join(ROOT, "scripts", "gpu_check.py"), "--allow-no-gpu",
                            "--python", sys.executable, "--stages", "preflight,configure", "--build-dir", build,
                            "--out", out], stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, timeout=900)
        with open(os.path.join(out, "gpu_check.json")) as f:
            report = json.load(f)
        assert p.returncode == 0 and report["status"] == "ok", p.stdout + json.dumps(report, indent=1)[-3000:]
        assert [s["name"] for s in report["stages"]] == ["preflight", "configure"], report["stages"]
        cache = {}
        with open(os.path.join(build, "CMakeCache.txt")) as f:
            for line in f:
                if ":" in line and "=" in line and not line.startswith(("//", "#")):
                    key, value = line.rstrip("\n").split("=", 1)
                    cache[key.split(":")[0]] = value
        prefix = os.path.join(DEPS, "root", "usr") + os.sep
        wrong = {k: cache.get(k) for k in FROM_PREFIX if not (cache.get(k) or "").startswith(prefix)}
        assert not wrong, f"taken from outside {prefix}: {wrong}"
        assert cache.get("CMAKE_DISABLE_FIND_PACKAGE_PkgConfig") == "ON"
        print(f"ok: configure against {prefix} took {report['stages'][1]['seconds']} s; "
              f"{len(FROM_PREFIX)} dependencies resolved inside it")
    return 0


if __name__ == "__main__":
    sys.exit(main())
