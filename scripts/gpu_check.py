"""`make gpu-check`: the CUDA path proven in one short command on a GPU host.

The host is assumed to have PyTorch 2.11 (+cu130) in its python3, CMake, ninja and nvcc, but no
package registry: the other build dependencies come from the Debian packages that
../shared/gpu/fetch-debs.sh (through scripts/gpu_deps.sh) unpacked into .deps/root. Stages:

  preflight  GPU, torch, tools and the .deps prefix; the carried libraries the host lacks
  configure  cmake against torch's prefix and .deps/root/usr (pkg-config and HDF5's wrappers off)
  build      only what the checks run: dirmoe_gpu_tests, bench_suite, dirmoe-data/-train/-eval
  tests      ctest -L gpu (the [gpu] Catch2 cases and tests/cli/test_*_gpu.sh)
  bench      llama185m recipes, bf16: switch and dirmoe first, then dirmoe with its α MLP in float32
             (router.dirmoe.alpha_mlp_precision, whose "auto" runs it in bf16 here), dirmoe without
             its CUDA element kernels (bench_suite --cuda-element-kernels false: the routing chain and
             the Dirichlet KL as tensor operators), remoe and sparsemixer while time remains; ms/step,
             tokens/s, achieved TFLOP/s, peak CUDA memory, DirMoE/Switch

Everything lands in one JSON file (gpu_check.json, rewritten atomically after every stage so that
a run cut short still leaves what it measured) and one log, in --out (default: $OUT when set,
else the build directory). The whole run keeps to a time budget (--budget, 480 s): each stage gets
what is left, the tests leave room for the four main benchmark runs, and benchmark runs are
shortened or skipped (recorded in the JSON) when the rest would not fit.

    scripts/gpu_check.sh                    the real thing (on a CUDA host)
    scripts/gpu_check.sh --dry-run          print the plan and the commands, run nothing
"""
import argparse
import datetime
import json
import os
import re
import shutil
import subprocess
import sys
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
FORMAT_VERSION = 1

# Build targets the checks need (not the unit-test suite: the GPU host builds only these).
TARGETS = ["dirmoe_gpu_tests", "bench_suite", "dirmoe-data", "dirmoe-train", "dirmoe-eval"]
# Router → recipe of the benchmark, in the order they run (the first two give the ratio).
RECIPES = {"topk": "llama185m_switch.json", "dirmoe": "llama185m_dirmoe.json",
           "dirmoe_alpha_fp32": "llama185m_dirmoe.json", "dirmoe_operators": "llama185m_dirmoe.json",
           "remoe": "llama185m_remoe.json", "sparsemixer": "llama185m_sparsemixer.json"}
# Config overrides of a benchmark run besides its recipe's: DirMoE with the α MLP in float32, the
# before of the bf16 α MLP (docs/dirmoe.md, H14), measured in the same run.
OVERRIDES = {"dirmoe_alpha_fp32": ["router.dirmoe.alpha_mlp_precision=fp32"]}
# bench_suite flags of a benchmark run: DirMoE with its routing chain and Dirichlet KL as tensor operators,
# the before of their CUDA kernels (router/element_kernels.h), measured in the same run.
BENCH_FLAGS = {"dirmoe_operators": ["--cuda-element-kernels", "false"]}
# What each stage is expected to take on one H200 host with 16 cores (the dry run plans with these;
# the real run measures and records each stage's seconds in the report).
ESTIMATES = {"preflight": 10.0, "configure": 45.0, "build": 210.0, "tests": 90.0}
# Goals at 185M, bf16, one H200.
GOAL_DIRMOE_OVER_SWITCH = 1.02
GOAL_SWITCH_TFLOPS = 280.0
# Files the .deps prefix must hold (relative to its root/usr), by the package that brings them.
DEPS_FILES = {
    "libfmt-dev": "include/fmt/format.h",
    "libcli11-dev": "include/CLI/CLI.hpp",
    "nlohmann-json3-dev": "include/nlohmann/json.hpp",
    "catch2": "include/catch2/catch.hpp",
    "libhdf5-dev": "include/hdf5/serial/H5Cpp.h",
    "libsentencepiece-dev": "include/sentencepiece_processor.h",
    "libgloo-dev": "include/gloo/config.h",
}
# Headers that the host may have itself, else .deps must (scripts/gpu_deps.sh adds them).
HOST_OR_DEPS_FILES = {"zlib1g-dev": "include/zlib.h", "libzstd-dev": "include/zstd.h"}


# ---------------------------------------------------------------------------------------------
# Time budget


class Budget:
    """Seconds left of `total`, counted from construction, less a reserve for writing the report.
    `clock` is injectable for tests."""

    def __init__(self, total, reserve=10.0, clock=time.monotonic):
        self.total, self.reserve, self.clock = float(total), float(reserve), clock
        self.start = clock()

    def elapsed(self):
        return self.clock() - self.start

    def left(self):
        """Seconds still usable by stages (the reserve excluded); never negative."""
        return max(0.0, self.total - self.reserve - self.elapsed())


class BenchCostModel:
    """Predicts a benchmark process's wall time as start-up overhead + steps × step time; both are
    re-estimated from every run that finished (the defaults are for 185M on one H200)."""

    def __init__(self, overhead=30.0, step_seconds=0.4):
        self.overhead, self.step_seconds = overhead, step_seconds

    def predict(self, steps):
        return self.overhead + steps * self.step_seconds

    def update(self, wall_seconds, steps, step_seconds):
        self.step_seconds = step_seconds
        self.overhead = max(1.0, wall_seconds - steps * step_seconds)


def plan_bench_run(left, cost, steps, warmup, min_steps):
    """What to do with one benchmark configuration given `left` seconds: ("run", steps) with the
    full count when it fits, ("shortened", n) with the most steps that fit (n ≥ min_steps), or
    ("skipped", 0)."""
    if cost.predict(warmup + steps) <= left:
        return "run", steps
    # NOTE: the epsilon keeps a share of exactly n steps' time (left = overhead + n·step) from rounding to n − 1
    fit = int((left - cost.overhead) / cost.step_seconds + 1e-9) - warmup
    if fit >= min_steps:
        return "shortened", fit
    return "skipped", 0


# The benchmark runs the goals and the levers (the α MLP in bf16, the element kernels) are read from: the
# tests leave room for each at --min-steps, and they share the time left for them evenly.
MAIN_RUNS = ("topk", "dirmoe", "dirmoe_alpha_fp32", "dirmoe_operators")


def main_run_share(left, routers, index, floor=0.0):
    """Seconds that routers[index] may plan with when `left` remain: a main run, an even share of `left`
    among itself and the main runs after it, but at least `floor` (what --min-steps need) while that
    much is left, so that a stage before that overran its estimate costs the last main run its steps,
    not the first (Switch, the baseline of every ratio); any other run, all of `left`."""
    if routers[index] not in MAIN_RUNS:
        return left
    return max(left / (1 + sum(r in MAIN_RUNS for r in routers[index + 1:])), min(left, floor))


def tests_time_limit(left, cost, warmup, min_steps, floor=60.0, main_runs=2):
    """The GPU tests may use what is left after the main benchmark runs (`main_runs` of them at
    min_steps each), but never less than `floor` (the tests come first) nor more than `left`."""
    keep = main_runs * cost.predict(warmup + min_steps)
    return max(min(floor, left), left - keep)


# ---------------------------------------------------------------------------------------------
# Report


class Report:
    """The JSON report, rewritten whole (temporary file + rename) by every save()."""

    def __init__(self, path):
        self.path = path
        self.data = {"format_version": FORMAT_VERSION, "status": "running",
                     "started": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
                     "stages": []}

    def stage(self, name, status, seconds, **fields):
        rec = {"name": name, "status": status, "seconds": round(seconds, 2)}
        rec.update(fields)
        self.data["stages"].append(rec)
        self.save()
        return rec

    def set(self, key, value):
        self.data[key] = value
        self.save()

    def save(self):
        if not self.path:
            return
        os.makedirs(os.path.dirname(os.path.abspath(self.path)), exist_ok=True)
        tmp = self.path + ".tmp"
        with open(tmp, "w") as f:
            json.dump(self.data, f, indent=1)
            f.write("\n")
        os.replace(tmp, self.path)


# ---------------------------------------------------------------------------------------------
# Running commands


class Runner:
    """Runs commands with a time limit, appending their output to one log file; --dry-run prints
    them instead."""

    def __init__(self, log_path, env, dry_run=False):
        self.log_path, self.env, self.dry_run = log_path, env, dry_run
        self.planned = []

    def log(self, text):
        print(text, flush=True)
        if self.log_path and not self.dry_run:
            with open(self.log_path, "a") as f:
                f.write(text + "\n")

    def run(self, cmd, timeout, cwd=ROOT, what=""):
        """Returns (returncode or None when it timed out, stdout+stderr text, seconds)."""
        text = " ".join(shlex_quote(c) for c in cmd)
        if self.dry_run:
            self.planned.append(cmd)
            print(f"  would run ({what}, limit {timeout:.0f} s): {text}")
            return 0, "", 0.0
        self.log(f"$ {text}    # {what}, limit {timeout:.0f} s")
        t0 = time.monotonic()
        try:
            p = subprocess.run(cmd, cwd=cwd, env=self.env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                               text=True, errors="replace", timeout=max(1.0, timeout))
            out, rc = p.stdout, p.returncode
        except subprocess.TimeoutExpired as e:
            out = e.stdout.decode(errors="replace") if isinstance(e.stdout, bytes) else (e.stdout or "")
            rc = None
        except OSError as e:
            out, rc = f"cannot run {cmd[0]}: {e}", 127
        seconds = time.monotonic() - t0
        if self.log_path:
            with open(self.log_path, "a") as f:
                f.write(out)
                f.write(f"\n# exit {rc} after {seconds:.1f} s\n")
        return rc, out, seconds


def shlex_quote(s):
    s = str(s)
    return s if re.fullmatch(r"[A-Za-z0-9_./:=,+@%-]+", s) else "'" + s.replace("'", "'\\''") + "'"


def tail(text, n=2000):
    return text[-n:] if text else ""


def probe(cmd, env=None, timeout=60):
    """stdout of a quick command, or None when it fails."""
    try:
        p = subprocess.run(cmd, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True, timeout=timeout, env=env)
        return p.stdout.strip() if p.returncode == 0 else None
    except (OSError, subprocess.TimeoutExpired):
        return None


# ---------------------------------------------------------------------------------------------
# Stages


TORCH_PROBE = ("import json, torch, torch.utils\n"
               "c = torch.cuda.is_available()\n"
               "print(json.dumps({'version': torch.__version__, 'cuda': torch.version.cuda, 'cuda_available': c,\n"
               "  'cmake_prefix_path': torch.utils.cmake_prefix_path,\n"
               "  'device': torch.cuda.get_device_name(0) if c else None,\n"
               "  'capability': list(torch.cuda.get_device_capability(0)) if c else None}))")


def find_python(wanted):
    """The python that has torch: --python, else python3 when it imports torch, else .venv's."""
    candidates = [wanted] if wanted else ["python3", os.path.join(ROOT, ".venv", "bin", "python")]
    for py in candidates:
        if probe([py, "-c", "import torch"], timeout=120) is not None:
            return os.path.abspath(py) if os.sep in py else (shutil.which(py) or py)
    return None


def deps_status(deps_root):
    """Which required files the .deps prefix holds; the host-or-deps headers, where found."""
    usr = os.path.join(deps_root, "usr")
    missing = [pkg for pkg, f in DEPS_FILES.items() if not os.path.exists(os.path.join(usr, f))]
    host_or_deps = {}
    for pkg, f in HOST_OR_DEPS_FILES.items():
        where = "deps" if os.path.exists(os.path.join(usr, f)) else ("host" if os.path.exists(os.path.join("/usr", f)) else None)
        host_or_deps[pkg] = where
        if where is None:
            missing.append(pkg)
    return {"prefix": usr, "present": os.path.isdir(usr), "missing": missing, "host_or_deps": host_or_deps}


def carried_library_dirs(deps_root):
    usr = os.path.join(deps_root, "usr")
    dirs = []
    for base in (os.path.join(usr, "lib", "x86_64-linux-gnu"), os.path.join(deps_root, "lib", "x86_64-linux-gnu")):
        for sub in ("", os.path.join("hdf5", "serial")):
            d = os.path.join(base, sub)
            if os.path.isdir(d):
                dirs.append(d)
    return dirs


SONAME = re.compile(r"^lib.+\.so\.\d+$")


def fill_in_libraries(deps_root, fill_dir, host_sonames):
    """Links every carried shared library (by soname, e.g. libsz.so.2) that the host lacks into
    fill_dir, which goes on LD_LIBRARY_PATH: a library the host has is never shadowed, so no host
    program can load a carried copy of something it already uses."""
    os.makedirs(fill_dir, exist_ok=True)
    linked = []
    for d in carried_library_dirs(deps_root):
        for name in sorted(os.listdir(d)):
            if not SONAME.match(name) or name in host_sonames:
                continue
            target = os.path.join(fill_dir, name)
            if os.path.lexists(target):
                os.remove(target)
            os.symlink(os.path.abspath(os.path.join(d, name)), target)
            linked.append(name)
    return linked


IMPORT_CHECK = re.compile(r'_cmake_import_check_files_for_\S+ "\$\{_IMPORT_PREFIX\}/([^"]+\.a)"')


def placeholder_archives(deps_root):
    """Creates an empty archive for every static library that a CMake package of the prefix names
    but fetch-debs.sh deleted (it keeps the carried tree small), and returns their paths.
    NOTE: CMake refuses a package whose imported targets name a missing file, even a target we
    never link (Catch2's Catch2WithMain: the tests have their own main)."""
    made = []
    for top, _, files in os.walk(os.path.join(deps_root, "usr")):
        for name in files:
            if not (name.endswith("Targets-none.cmake") or name.endswith("Targets-release.cmake")):
                continue
            path = os.path.join(top, name)
            with open(path, errors="replace") as f:
                text = f.read()
            # _IMPORT_PREFIX is the package's prefix: the folder three (lib/cmake/X) or four
            # (lib/<arch>/cmake/X) levels above its CMake files, as their own header computes it.
            up = 4 if os.sep + "x86_64-linux-gnu" + os.sep in path else 3
            prefix = os.path.abspath(os.path.join(top, *[".."] * up))
            for rel in IMPORT_CHECK.findall(text):
                archive = os.path.join(prefix, rel)
                if not os.path.exists(archive):
                    with open(archive, "wb") as f:
                        f.write(b"!<arch>\n")  # the 8-byte header of an empty ar archive
                    made.append(archive)
    return made


def host_sonames():
    out = probe(["ldconfig", "-p"]) or probe(["/sbin/ldconfig", "-p"])
    if out is None:
        return None
    return {line.split()[0] for line in out.splitlines()[1:] if line.strip()}


def configure_command(args, torch_prefix, deps_usr, python):
    prefix = ";".join(p for p in (torch_prefix, deps_usr) if p)
    return ["cmake", "-S", ROOT, "-B", args.build_dir, "-G", "Ninja", "-DCMAKE_BUILD_TYPE=Release",
            f"-DCMAKE_PREFIX_PATH={prefix}",
            # the carried .pc files name /usr as their prefix: search headers and libraries instead
            "-DCMAKE_DISABLE_FIND_PACKAGE_PkgConfig=ON",
            # HDF5's compiler wrappers (h5cc) would report /usr paths: make FindHDF5 search the prefix
            "-DHDF5_C_COMPILER_EXECUTABLE=/bin/false", "-DHDF5_CXX_COMPILER_EXECUTABLE=/bin/false",
            f"-DDIRMOE_TEST_PYTHON={python}", "-DDIRMOE_BUILD_TESTS=ON", "-DDIRMOE_BUILD_APPS=ON",
            # NOTE: the precompiled LibTorch header is one serial compile before the library's ~95
            # files, each of which then skips parsing torch.h; on by default, --no-pch to compare
            # (the report records which one a build used)
            f"-DDIRMOE_USE_PCH={'OFF' if args.no_pch else 'ON'}"]


def build_command(args):
    return ["cmake", "--build", args.build_dir, "-j", str(args.jobs), "--target", *TARGETS, "--", "-k", "0"]


def tests_command(args, per_test_timeout):
    return ["ctest", "--test-dir", args.build_dir, "-L", "gpu", "--output-on-failure", "-j", str(args.test_jobs),
            "--timeout", str(int(per_test_timeout))]


# ctest's result lines: "  3/12 Test  #4: gpu:name with spaces ....***Failed    0.20 sec"
CTEST_LINE = re.compile(r"^\s*\d+/\d+ Test\s+#\d+: (.+?) \.+\s*(?:\*+)?(\w[\w ]*?)\s+([\d.]+) sec\s*$", re.MULTILINE)


def parse_ctest(text):
    """Per-test results from ctest's progress lines: [{"name", "status", "seconds"}]."""
    cases = []
    for m in CTEST_LINE.finditer(text):
        cases.append({"name": m.group(1), "status": m.group(2).strip().lower(), "seconds": float(m.group(3))})
    return cases


def bench_command(args, router, steps, warmup):
    return [os.path.join(args.build_dir, "bin", "bench_suite"), "step", "--device", "cuda", "--scale", "llama185m",
            "--config", os.path.join(ROOT, "experiments", "configs", RECIPES[router]),
            "--repeats", str(steps), "--warmup", str(warmup)] + \
        [arg for o in OVERRIDES.get(router, []) for arg in ("--set", o)] + BENCH_FLAGS.get(router, [])


def bench_figures(step_json):
    """The figures of one `bench_suite step` JSON."""
    s = step_json["step"]
    return {"ms_per_step": 1e3 * s["step_seconds"], "tokens_per_s": s["tokens_per_s"],
            "tflops_per_s": s["achieved_flops_per_s"] / 1e12, "flops_per_token": s["flops_per_token"],
            "tokens_per_step": s["tokens_per_step"], "active_experts_per_layer": s["active_experts_per_layer"],
            "peak_cuda_bytes": step_json.get("cuda_max_allocated_bytes"), "steps": len(s["step_seconds_all"]),
            "parameters": s.get("parameters"),
            # whether DirMoE's chain and KL ran as dirmoe's CUDA kernels (built and switched on)
            "element_kernels": step_json.get("element_kernels_ran")}


def summarize_bench(runs):
    """DirMoE/Switch step ratio and the goals, from the routers that ran."""
    out = {}
    sw, dm = runs.get("topk", {}).get("figures"), runs.get("dirmoe", {}).get("figures")
    if sw:
        out["switch_tflops_per_s"] = sw["tflops_per_s"]
        out["goal_switch_tflops"] = {"goal": GOAL_SWITCH_TFLOPS, "met": sw["tflops_per_s"] >= GOAL_SWITCH_TFLOPS}
    if sw and dm:
        ratio = dm["ms_per_step"] / sw["ms_per_step"]
        out["dirmoe_over_switch"] = ratio
        out["goal_dirmoe_over_switch"] = {"goal": GOAL_DIRMOE_OVER_SWITCH, "met": ratio <= GOAL_DIRMOE_OVER_SWITCH}
    fp32 = runs.get("dirmoe_alpha_fp32", {}).get("figures")
    if sw and fp32:
        out["dirmoe_alpha_fp32_over_switch"] = fp32["ms_per_step"] / sw["ms_per_step"]
    operators = runs.get("dirmoe_operators", {}).get("figures")
    if sw and operators:
        out["dirmoe_operators_over_switch"] = operators["ms_per_step"] / sw["ms_per_step"]
        # a comparison of the element kernels only where the default run had them and this one did not
        out["element_kernels_compared"] = bool(dm and dm.get("element_kernels") is True and
                                               operators.get("element_kernels") is False)
    return out


# ---------------------------------------------------------------------------------------------


def parse_args(argv):
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--dry-run", action="store_true", help="print the plan and the commands; run nothing")
    p.add_argument("--out", default=os.environ.get("OUT", ""),
                   help="folder for gpu_check.json and gpu_check.log (default: $OUT, else the build directory)")
    p.add_argument("--budget", type=float, default=480.0, help="seconds for the whole run (default 480)")
    p.add_argument("--deps", default=os.path.join(ROOT, ".deps"), help="the fetch-debs prefix (default .deps)")
    p.add_argument("--build-dir", default=os.path.join(ROOT, "build-gpu"))
    p.add_argument("--jobs", type=int, default=os.cpu_count() or 1, help="build jobs (default: all cores)")
    p.add_argument("--test-jobs", type=int, default=4, help="ctest -j on the one GPU")
    p.add_argument("--python", default="", help="the python with torch (default: python3, else .venv's)")
    p.add_argument("--stages", default="preflight,configure,build,tests,bench")
    p.add_argument("--routers", default="topk,dirmoe,dirmoe_alpha_fp32,dirmoe_operators,remoe,sparsemixer")
    p.add_argument("--steps", type=int, default=40, help="timed benchmark steps per router")
    p.add_argument("--warmup", type=int, default=3, help="untimed benchmark steps first")
    p.add_argument("--min-steps", type=int, default=10, help="fewer would not be worth the start-up")
    p.add_argument("--bench-overhead", type=float, default=30.0,
                   help="seconds a benchmark process is expected to spend besides its steps, until one has run")
    p.add_argument("--bench-step-seconds", type=float, default=0.4,
                   help="seconds per 185M step expected until one has run")
    p.add_argument("--no-pch", action="store_true", help="build without the precompiled LibTorch header (to compare)")
    p.add_argument("--allow-no-gpu", action="store_true",
                   help="go on without a CUDA device (checks this script's configure and build path on a CPU machine)")
    a = p.parse_args(argv)
    a.build_dir = os.path.abspath(a.build_dir)
    a.deps = os.path.abspath(a.deps)
    a.stages = [s for s in a.stages.split(",") if s]
    a.routers = [r for r in a.routers.split(",") if r]
    unknown = [s for s in a.stages if s not in ("preflight", "configure", "build", "tests", "bench")]
    unknown += [r for r in a.routers if r not in RECIPES]
    if unknown:
        p.error(f"unknown stage or router: {', '.join(unknown)}")
    return a


def main(argv=None):
    args = parse_args(sys.argv[1:] if argv is None else argv)
    # NOTE: the dry run plans on a simulated clock that each stage advances by its estimate, so
    # that it shows which benchmark runs the budget would shorten or skip.
    simulated = [0.0]
    budget = Budget(args.budget, clock=(lambda: simulated[0]) if args.dry_run else time.monotonic)

    def simulate(stage, seconds=None):
        if args.dry_run:
            simulated[0] += ESTIMATES.get(stage, 0.0) if seconds is None else seconds
    out_dir = os.path.abspath(args.out) if args.out else args.build_dir
    report = Report(None if args.dry_run else os.path.join(out_dir, "gpu_check.json"))
    log_path = None if args.dry_run else os.path.join(out_dir, "gpu_check.log")
    if log_path:
        os.makedirs(out_dir, exist_ok=True)
        open(log_path, "w").close()
    deps_root = os.path.join(args.deps, "root")
    fill_dir = os.path.join(args.build_dir, "carried-libs")
    env = dict(os.environ)
    env["LD_LIBRARY_PATH"] = ":".join([fill_dir] + ([env["LD_LIBRARY_PATH"]] if env.get("LD_LIBRARY_PATH") else []))
    env.setdefault("PYTHONUNBUFFERED", "1")
    # tests/gpu/run.sh fails instead of reporting "skipped" when the device or the binary is missing
    env["DIRMOE_GPU_REQUIRED"] = "1"
    runner = Runner(log_path, env, dry_run=args.dry_run)
    cost = BenchCostModel(args.bench_overhead, args.bench_step_seconds)
    failed = False

    def say(text):
        runner.log(f"[gpu-check {budget.elapsed():5.0f}s / {args.budget:.0f}s] {text}")

    report.set("budget_seconds", args.budget)
    report.set("git_revision", probe(["git", "-C", ROOT, "describe", "--always", "--dirty"]) or "unknown")
    report.set("out", out_dir)
    if args.dry_run:
        say(f"dry run: budget {args.budget:.0f} s, build dir {args.build_dir}, report {out_dir}/gpu_check.json; "
            f"times below are estimates ({', '.join(f'{k} {v:.0f} s' for k, v in ESTIMATES.items())}, a benchmark "
            f"run {cost.overhead:.0f} s + {cost.step_seconds} s/step)")

    # preflight ----------------------------------------------------------------------------------
    python = find_python(args.python) or (args.python or "python3")
    torch_info = None
    if "preflight" in args.stages or "configure" in args.stages:
        t0 = time.monotonic()
        t = probe([python, "-c", TORCH_PROBE], timeout=120)
        torch_info = json.loads(t) if t else None
        deps = deps_status(deps_root)
        host = {"python": python, "torch": torch_info, "cores": os.cpu_count(),
                "gpu": probe(["nvidia-smi", "--query-gpu=name,driver_version,memory.total", "--format=csv,noheader"]),
                "cmake": (probe(["cmake", "--version"]) or "").split("\n")[0] or None,
                "ninja": probe(["ninja", "--version"]),
                "nvcc": (probe(["nvcc", "--version"]) or "").strip().split("\n")[-1] or None,
                "ctest": shutil.which("ctest")}
        sonames = host_sonames()
        problems = []
        if not torch_info:
            problems.append(f"no torch in {python} (pass --python)")
        elif not torch_info["cuda_available"] and not args.allow_no_gpu:
            problems.append("torch sees no CUDA device (--allow-no-gpu to go on anyway)")
        for tool in ("cmake", "ninja", "ctest"):
            if not shutil.which(tool):
                problems.append(f"{tool} not found on PATH")
        if not deps["present"]:
            problems.append(f"no Debian prefix at {deps['prefix']}: run scripts/gpu_deps.sh where apt works "
                            "and carry .deps along")
        elif deps["missing"]:
            problems.append(f"{deps['prefix']} lacks {', '.join(deps['missing'])}: rerun scripts/gpu_deps.sh")
        linked = [] if args.dry_run or not deps["present"] else fill_in_libraries(deps_root, fill_dir, sonames or set())
        placeholders = [] if args.dry_run or not deps["present"] else placeholder_archives(deps_root)
        if torch_info and torch_info.get("capability"):
            env["TORCH_CUDA_ARCH_LIST"] = "{}.{}".format(*torch_info["capability"])
        report.set("host", host)
        rec = {"deps": deps, "carried_libraries_linked": linked, "host_sonames_known": sonames is not None,
               "placeholder_archives": placeholders,
               "problems": problems}
        if args.dry_run:
            simulate("preflight")
            say(f"preflight: python {python}, torch {torch_info and torch_info['version']}, "
                f"CUDA device {torch_info and torch_info['device']}; .deps {'present' if deps['present'] else 'MISSING'}"
                f"{' (lacks ' + ', '.join(deps['missing']) + ')' if deps['missing'] else ''}")
            for problem in problems:
                say(f"preflight would stop here: {problem}")
        else:
            report.stage("preflight", "failed" if problems else "ok", time.monotonic() - t0, **rec)
            say("preflight: " + ("; ".join(problems) if problems else "ok"))
            if problems:
                return finish(report, say, budget, "failed")

    # configure ----------------------------------------------------------------------------------
    torch_prefix = torch_info["cmake_prefix_path"] if torch_info else "$(python3 -c 'import torch.utils; print(torch.utils.cmake_prefix_path)')"
    if "configure" in args.stages:
        cmd = configure_command(args, torch_prefix, os.path.join(deps_root, "usr"), python)
        rc, out, secs = runner.run(cmd, budget.left(), what="configure")
        simulate("configure")
        if not args.dry_run:
            ok = rc == 0
            report.stage("configure", "ok" if ok else ("timed_out" if rc is None else "failed"), secs,
                         command=cmd, log_tail=tail(out))
            say(f"configure: {'ok' if ok else 'FAILED'} in {secs:.0f} s")
            if not ok:
                return finish(report, say, budget, "failed")

    # build --------------------------------------------------------------------------------------
    if "build" in args.stages:
        cmd = build_command(args)
        rc, out, secs = runner.run(cmd, budget.left(), what="build")
        simulate("build")
        if not args.dry_run:
            built = {t: os.path.exists(os.path.join(args.build_dir, "bin", t)) for t in TARGETS}
            status = "ok" if rc == 0 else ("timed_out" if rc is None else "failed")
            report.stage("build", status, secs, command=cmd, targets_built=built, jobs=args.jobs,
                         precompiled_header=not args.no_pch, log_tail=tail(out))
            say(f"build: {status} in {secs:.0f} s ({sum(built.values())}/{len(built)} targets)")
            failed |= status != "ok"
            if not any(built.values()):
                return finish(report, say, budget, "failed")

    # tests --------------------------------------------------------------------------------------
    if "tests" in args.stages:
        main_runs = sum(r in MAIN_RUNS for r in args.routers)
        limit = (tests_time_limit(budget.left(), cost, args.warmup, args.min_steps, main_runs=main_runs)
                 if "bench" in args.stages else budget.left())
        if args.dry_run:
            say(f"tests: up to {limit:.0f} s now (what is left after the {main_runs} main benchmark runs at "
                f"{args.min_steps} steps, at least 60 s)")
        cmd = tests_command(args, per_test_timeout=min(300, max(30, limit)))
        rc, out, secs = runner.run(cmd, limit, what="gpu tests")
        simulate("tests", min(limit, ESTIMATES["tests"]))
        if not args.dry_run:
            cases = parse_ctest(out)
            passed = sum(c["status"] == "passed" for c in cases)
            skipped = sum(c["status"] == "skipped" for c in cases)
            status = "ok" if rc == 0 and cases else ("timed_out" if rc is None else "failed")
            report.stage("tests", status, secs, command=cmd, time_limit=round(limit, 1), passed=passed,
                         skipped=skipped, failed=len(cases) - passed - skipped, cases=cases, log_tail=tail(out, 6000))
            say(f"tests: {passed}/{len(cases)} passed ({status}) in {secs:.0f} s")
            failed |= status != "ok"

    # bench --------------------------------------------------------------------------------------
    if "bench" in args.stages:
        runs = {}
        for index, router in enumerate(args.routers):
            share = main_run_share(budget.left(), args.routers, index,
                                   floor=cost.predict(args.warmup + args.min_steps))
            decision, steps = plan_bench_run(share, cost, args.steps, args.warmup, args.min_steps)
            if args.dry_run:
                need = cost.predict(args.warmup + (steps if decision != "skipped" else args.min_steps))
                say(f"bench {router}: {decision}" + (f" with {steps} steps" if steps else "") +
                    f" (predicted {need:.0f} s{'' if steps else f' for {args.min_steps} steps'}, "
                    f"{budget.left():.0f} s left)")
                if decision != "skipped":
                    runner.run(bench_command(args, router, steps, args.warmup), budget.left(), what=f"bench {router}")
                    simulate("bench", cost.predict(args.warmup + steps))
                continue
            if decision == "skipped":
                runs[router] = {"status": "skipped", "reason": f"{budget.left():.0f} s left, "
                                f"{cost.predict(args.warmup + args.min_steps):.0f} s needed for {args.min_steps} steps"}
                say(f"bench {router}: skipped ({runs[router]['reason']})")
                report.set("bench", {"runs": runs, **summarize_bench(runs)})
                continue
            cmd = bench_command(args, router, steps, args.warmup)
            rc, out, secs = runner.run(cmd, budget.left(), what=f"bench {router}")
            run = {"status": "ok" if rc == 0 else ("timed_out" if rc is None else "failed"), "seconds": round(secs, 1),
                   "steps_requested": args.steps, "steps": steps, "shortened": decision == "shortened",
                   "command": cmd}
            if rc == 0:
                try:
                    step_json = json.loads(out.strip().splitlines()[-1])
                    run["figures"] = bench_figures(step_json)
                    run["raw"] = step_json
                    cost.update(secs, args.warmup + steps, step_json["step"]["step_seconds"])
                except (ValueError, KeyError, IndexError) as e:
                    run["status"] = "failed"
                    run["error"] = f"unreadable bench_suite output: {e}"
            if run["status"] != "ok":
                run["log_tail"] = tail(out)
                failed = True
            runs[router] = run
            f = run.get("figures")
            say(f"bench {router}: {run['status']}" + (f", {f['ms_per_step']:.1f} ms/step, {f['tokens_per_s']:.0f} tok/s, "
                                                      f"{f['tflops_per_s']:.1f} TFLOP/s" if f else ""))
            report.set("bench", {"runs": runs, **summarize_bench(runs)})
        if not args.dry_run:
            summary = summarize_bench(runs)
            if "dirmoe_over_switch" in summary:
                say(f"bench: DirMoE/Switch step time {summary['dirmoe_over_switch']:.3f} (goal ≤ {GOAL_DIRMOE_OVER_SWITCH}), "
                    f"Switch {summary['switch_tflops_per_s']:.0f} TFLOP/s (goal ≥ {GOAL_SWITCH_TFLOPS:.0f})")
            if "dirmoe_alpha_fp32_over_switch" in summary:
                say(f"bench: DirMoE with its α MLP in float32 / Switch {summary['dirmoe_alpha_fp32_over_switch']:.3f}")
            if "dirmoe_operators_over_switch" in summary:
                say(f"bench: DirMoE without the element kernels (operators) / Switch "
                    f"{summary['dirmoe_operators_over_switch']:.3f}")

    if args.dry_run:
        say(f"dry run done: {len(runner.planned)} commands planned")
        return 0
    return finish(report, say, budget, "failed" if failed else "ok")


def finish(report, say, budget, status):
    report.data["elapsed_seconds"] = round(budget.elapsed(), 1)
    report.data["finished"] = datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds")
    report.set("status", status)
    say(f"{status}: report {report.path}")
    return 0 if status == "ok" else 1


if __name__ == "__main__":
    sys.exit(main())
