"""scripts/gpu_check.py on a machine without a GPU: its time-budget decisions, its JSON report,
its reading of ctest's output, the carried-library and placeholder-archive handling, the dry run,
and a whole run with stand-in tools (cmake, ctest, nvidia-smi and bench_suite replaced by small
scripts) that checks the stages' records and that benchmark runs that cannot fit are skipped.

    python tests/scripts/test_gpu_check.py        (ctest: script:gpu_check)
"""
import json
import os
import subprocess
import sys
import tempfile
import textwrap
import unittest

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
sys.path.insert(0, os.path.join(ROOT, "scripts"))
import gpu_check  # noqa: E402


class FakeClock:
    def __init__(self):
        self.now = 100.0

    def __call__(self):
        return self.now


class BudgetTest(unittest.TestCase):
    def test_budget_counts_down_and_keeps_its_reserve(self):
        clock = FakeClock()
        b = gpu_check.Budget(480, reserve=10, clock=clock)
        self.assertEqual(b.left(), 470)
        clock.now += 300
        self.assertEqual(b.elapsed(), 300)
        self.assertEqual(b.left(), 170)
        clock.now += 1000
        self.assertEqual(b.left(), 0)

    def test_bench_run_full_shortened_or_skipped(self):
        cost = gpu_check.BenchCostModel(overhead=20, step_seconds=0.5)
        # 3 warm-up + 40 steps = 43 × 0.5 + 20 = 41.5 s
        self.assertEqual(gpu_check.plan_bench_run(41.5, cost, 40, 3, 10), ("run", 40))
        # 30 s: (30 − 20) / 0.5 = 20 steps, less the warm-up: 17
        self.assertEqual(gpu_check.plan_bench_run(30, cost, 40, 3, 10), ("shortened", 17))
        # 26 s: 12 − 3 = 9 < 10
        self.assertEqual(gpu_check.plan_bench_run(26, cost, 40, 3, 10), ("skipped", 0))
        self.assertEqual(gpu_check.plan_bench_run(0, cost, 40, 3, 10), ("skipped", 0))

    def test_cost_model_learns_from_a_finished_run(self):
        cost = gpu_check.BenchCostModel(overhead=30, step_seconds=0.4)
        cost.update(wall_seconds=25.0, steps=43, step_seconds=0.3)
        self.assertAlmostEqual(cost.step_seconds, 0.3)
        self.assertAlmostEqual(cost.overhead, 25.0 - 43 * 0.3)
        self.assertAlmostEqual(cost.predict(13), cost.overhead + 13 * 0.3)

    def test_tests_leave_room_for_the_two_main_benchmark_runs(self):
        cost = gpu_check.BenchCostModel(overhead=20, step_seconds=0.5)
        keep = 2 * (20 + 13 * 0.5)  # switch and dirmoe at 3 + 10 steps
        self.assertAlmostEqual(gpu_check.tests_time_limit(200, cost, 3, 10), 200 - keep)
        self.assertEqual(gpu_check.tests_time_limit(70, cost, 3, 10), 60)  # the floor
        self.assertEqual(gpu_check.tests_time_limit(40, cost, 3, 10), 40)  # never more than is left
        # with DirMoE's float32-α run as well: three main runs; and its operators' run: four
        self.assertAlmostEqual(gpu_check.tests_time_limit(200, cost, 3, 10, main_runs=3), 200 - 1.5 * keep)
        self.assertAlmostEqual(gpu_check.tests_time_limit(200, cost, 3, 10, main_runs=4), 200 - 2 * keep)

    def test_the_main_runs_share_what_is_left_evenly(self):
        routers = ["topk", "dirmoe", "dirmoe_alpha_fp32", "dirmoe_operators", "remoe", "sparsemixer"]
        self.assertAlmostEqual(gpu_check.main_run_share(160, routers, 0), 40)
        self.assertAlmostEqual(gpu_check.main_run_share(120, routers, 1), 40)
        self.assertAlmostEqual(gpu_check.main_run_share(80, routers, 2), 40)
        self.assertAlmostEqual(gpu_check.main_run_share(40, routers, 3), 40)
        self.assertAlmostEqual(gpu_check.main_run_share(30, routers, 4), 30)  # the others take what is left
        self.assertAlmostEqual(gpu_check.main_run_share(90, ["topk", "dirmoe"], 0), 45)
        # a stage before overran: Switch (first) still gets the floor, the last main run what remains
        self.assertAlmostEqual(gpu_check.main_run_share(139, routers, 0, floor=35.2), 35.2)
        self.assertAlmostEqual(gpu_check.main_run_share(20, routers, 0, floor=35.2), 20)  # never more than left
        self.assertAlmostEqual(gpu_check.main_run_share(200, routers, 0, floor=35.2), 50)

    def test_a_share_of_exactly_n_steps_plans_n_steps(self):
        cost = gpu_check.BenchCostModel(overhead=30, step_seconds=0.4)
        self.assertEqual(gpu_check.plan_bench_run(cost.predict(13), cost, 40, 3, 10), ("shortened", 10))


class ReportTest(unittest.TestCase):
    def test_every_save_leaves_a_complete_json_file(self):
        with tempfile.TemporaryDirectory() as d:
            path = os.path.join(d, "sub", "gpu_check.json")
            r = gpu_check.Report(path)
            r.set("budget_seconds", 480)
            with open(path) as f:
                self.assertEqual(json.load(f)["status"], "running")
            r.stage("configure", "ok", 12.345, command=["cmake"])
            r.stage("build", "failed", 3.0, log_tail="error: x")
            with open(path) as f:
                data = json.load(f)
            self.assertEqual([s["name"] for s in data["stages"]], ["configure", "build"])
            self.assertEqual(data["stages"][0]["seconds"], 12.35)
            self.assertEqual(data["stages"][1]["log_tail"], "error: x")
            self.assertEqual(data["format_version"], gpu_check.FORMAT_VERSION)
            self.assertEqual(os.listdir(os.path.dirname(path)), ["gpu_check.json"])  # no temporary left


class CtestOutputTest(unittest.TestCase):
    def test_result_lines_with_spaces_and_every_outcome(self):
        text = textwrap.dedent("""\
            Test project /x/build-gpu
                Start 1: gpu:bf16 autocast step matches the fp32 step
            1/5 Test #1: gpu:bf16 autocast step matches the fp32 step ...   Passed    2.31 sec
            2/5 Test #2: gpu:fails ........................***Failed    0.01 sec
            3/5 Test #4: gpu:skips ........................***Skipped   0.00 sec
            4/5 Test #5: gpu:missing ......................***Not Run   0.00 sec
            5/5 Test #3: cli:test_eval_cuda_gpu ...........***Timeout 300.02 sec
            """)
        cases = gpu_check.parse_ctest(text)
        self.assertEqual([(c["name"], c["status"]) for c in cases],
                         [("gpu:bf16 autocast step matches the fp32 step", "passed"), ("gpu:fails", "failed"),
                          ("gpu:skips", "skipped"), ("gpu:missing", "not run"), ("cli:test_eval_cuda_gpu", "timeout")])
        self.assertEqual(cases[4]["seconds"], 300.02)


class CarriedPrefixTest(unittest.TestCase):
    def test_only_libraries_the_host_lacks_are_linked(self):
        with tempfile.TemporaryDirectory() as d:
            lib = os.path.join(d, "root", "usr", "lib", "x86_64-linux-gnu")
            os.makedirs(os.path.join(lib, "hdf5", "serial"))
            for name in ("libsz.so.2", "libsz.so.2.0.1", "libfmt.so.9", "libfmt.so", "libcurl.so.4"):
                open(os.path.join(lib, name), "w").close()
            open(os.path.join(lib, "hdf5", "serial", "libhdf5_cpp.so.103"), "w").close()
            fill = os.path.join(d, "fill")
            linked = gpu_check.fill_in_libraries(os.path.join(d, "root"), fill, {"libcurl.so.4", "libc.so.6"})
            self.assertEqual(sorted(linked), ["libfmt.so.9", "libhdf5_cpp.so.103", "libsz.so.2"])
            self.assertEqual(os.readlink(os.path.join(fill, "libsz.so.2")), os.path.join(lib, "libsz.so.2"))
            # a second run replaces its links
            self.assertEqual(sorted(gpu_check.fill_in_libraries(os.path.join(d, "root"), fill, set())),
                             ["libcurl.so.4", "libfmt.so.9", "libhdf5_cpp.so.103", "libsz.so.2"])

    def test_placeholder_for_a_deleted_archive_a_package_names(self):
        with tempfile.TemporaryDirectory() as d:
            cm = os.path.join(d, "root", "usr", "lib", "cmake", "Catch2")
            os.makedirs(cm)
            with open(os.path.join(cm, "Catch2Targets-none.cmake"), "w") as f:
                f.write('list(APPEND _cmake_import_check_files_for_Catch2::Catch2WithMain '
                        '"${_IMPORT_PREFIX}/lib/libCatch2WithMain.a" )\n')
            made = gpu_check.placeholder_archives(os.path.join(d, "root"))
            archive = os.path.join(d, "root", "usr", "lib", "libCatch2WithMain.a")
            self.assertEqual(made, [archive])
            with open(archive, "rb") as f:
                self.assertEqual(f.read(), b"!<arch>\n")
            self.assertEqual(gpu_check.placeholder_archives(os.path.join(d, "root")), [])  # already there

    def test_deps_status_names_the_missing_packages(self):
        with tempfile.TemporaryDirectory() as d:
            st = gpu_check.deps_status(os.path.join(d, "root"))
            self.assertFalse(st["present"])
            self.assertIn("libhdf5-dev", st["missing"])
            os.makedirs(os.path.join(d, "root", "usr", "include", "fmt"))
            open(os.path.join(d, "root", "usr", "include", "fmt", "format.h"), "w").close()
            st = gpu_check.deps_status(os.path.join(d, "root"))
            self.assertTrue(st["present"])
            self.assertNotIn("libfmt-dev", st["missing"])
            self.assertIn("libgloo-dev", st["missing"])


class BenchFiguresTest(unittest.TestCase):
    STEP = {"step": {"step_seconds": 0.25, "step_seconds_all": [0.25] * 40, "tokens_per_s": 131072.0,
                     "achieved_flops_per_s": 3.0e14, "flops_per_token": 2.29e9, "tokens_per_step": 32768,
                     "active_experts_per_layer": [1.0] * 12, "parameters": 700000000},
            "cuda_max_allocated_bytes": 40 * 2**30}

    def test_figures_and_the_dirmoe_over_switch_ratio(self):
        sw = gpu_check.bench_figures(self.STEP)
        self.assertAlmostEqual(sw["ms_per_step"], 250.0)
        self.assertAlmostEqual(sw["tflops_per_s"], 300.0)
        self.assertEqual(sw["steps"], 40)
        dm = dict(sw, ms_per_step=255.0)
        s = gpu_check.summarize_bench({"topk": {"figures": sw}, "dirmoe": {"figures": dm}})
        self.assertAlmostEqual(s["dirmoe_over_switch"], 1.02)
        self.assertTrue(s["goal_dirmoe_over_switch"]["met"])
        self.assertTrue(s["goal_switch_tflops"]["met"])
        self.assertNotIn("dirmoe_over_switch", gpu_check.summarize_bench({"topk": {"figures": sw}}))
        fp32 = dict(sw, ms_per_step=275.0)
        s = gpu_check.summarize_bench({"topk": {"figures": sw}, "dirmoe": {"figures": dm},
                                       "dirmoe_alpha_fp32": {"figures": fp32}})
        self.assertAlmostEqual(s["dirmoe_alpha_fp32_over_switch"], 1.1)
        self.assertAlmostEqual(s["dirmoe_over_switch"], 1.02)
        operators = dict(sw, ms_per_step=287.5)
        s = gpu_check.summarize_bench({"topk": {"figures": sw}, "dirmoe": {"figures": dm},
                                       "dirmoe_operators": {"figures": operators}})
        self.assertAlmostEqual(s["dirmoe_operators_over_switch"], 1.15)
        self.assertNotIn("dirmoe_alpha_fp32_over_switch", s)
        self.assertFalse(s["element_kernels_compared"])  # neither run said whether its kernels ran
        s = gpu_check.summarize_bench({"topk": {"figures": sw}, "dirmoe": {"figures": dict(dm, element_kernels=True)},
                                       "dirmoe_operators": {"figures": dict(operators, element_kernels=False)}})
        self.assertTrue(s["element_kernels_compared"])

    def test_the_float32_alpha_mlp_run_is_the_dirmoe_recipe_with_one_override(self):
        args = gpu_check.parse_args(["--build-dir", "/tmp/b"])
        self.assertEqual(args.routers[:3], ["topk", "dirmoe", "dirmoe_alpha_fp32"])
        plain = gpu_check.bench_command(args, "dirmoe", 10, 2)
        fp32 = gpu_check.bench_command(args, "dirmoe_alpha_fp32", 10, 2)
        self.assertEqual(fp32, plain + ["--set", "router.dirmoe.alpha_mlp_precision=fp32"])
        self.assertNotIn("--set", plain)

    def test_the_operators_run_is_the_dirmoe_recipe_without_the_element_kernels(self):
        args = gpu_check.parse_args(["--build-dir", "/tmp/b"])
        self.assertEqual(args.routers[:4], ["topk", "dirmoe", "dirmoe_alpha_fp32", "dirmoe_operators"])
        plain = gpu_check.bench_command(args, "dirmoe", 10, 2)
        operators = gpu_check.bench_command(args, "dirmoe_operators", 10, 2)
        self.assertEqual(operators, plain + ["--cuda-element-kernels", "false"])
        self.assertNotIn("--cuda-element-kernels", plain)


FAKE_TOOLS = {
    # cmake: configure writes nothing; --build "builds" each --target into bin/
    "cmake": """#!/bin/sh
case "$1" in
  --build) dir=$2; mkdir -p "$dir/bin"; shift 2
           while [ $# -gt 0 ]; do [ "$1" = --target ] && { shift; while [ $# -gt 0 ] && [ "$1" != -- ]; do
             : > "$dir/bin/$1"; shift; done; }; shift; done
           [ -n "$FAKE_BENCH" ] && rm -f "$dir/bin/bench_suite" && cp "$FAKE_BENCH" "$dir/bin/bench_suite"; echo built ;;
  --version) echo "cmake version 3.99" ;;
  *) echo configured ;;
esac
""",
    "ninja": "#!/bin/sh\necho 1.11\n",
    "ctest": """#!/bin/sh
echo "1/2 Test #1: gpu:one case ........   Passed    0.50 sec"
echo "2/2 Test #2: cli:test_eval_cuda_gpu .....   Passed    1.50 sec"
""",
    "nvidia-smi": "#!/bin/sh\necho 'Fake GPU, 1.0, 1 MiB'\n",
}
FAKE_BENCH = """#!/bin/sh
echo '{"step": {"step_seconds": 0.01, "step_seconds_all": [0.01, 0.01], "tokens_per_s": 1000.0,
 "achieved_flops_per_s": 1e12, "flops_per_token": 1e9, "tokens_per_step": 10,
 "active_experts_per_layer": [1.0], "parameters": 5}, "cuda_max_allocated_bytes": 1024}' | tr -d '\\n'
echo
"""


class WholeRunTest(unittest.TestCase):
    """gpu_check.py end to end with stand-in tools: what each stage records."""

    def run_check(self, d, *extra):
        bin_dir = os.path.join(d, "tools")
        os.makedirs(bin_dir, exist_ok=True)
        for name, text in FAKE_TOOLS.items():
            with open(os.path.join(bin_dir, name), "w") as f:
                f.write(text)
            os.chmod(os.path.join(bin_dir, name), 0o755)
        bench = os.path.join(d, "bench_suite")
        with open(bench, "w") as f:
            f.write(FAKE_BENCH)
        os.chmod(bench, 0o755)
        deps = os.path.join(d, "deps")
        usr = os.path.join(deps, "root", "usr")
        for f in list(gpu_check.DEPS_FILES.values()) + list(gpu_check.HOST_OR_DEPS_FILES.values()):
            os.makedirs(os.path.dirname(os.path.join(usr, f)), exist_ok=True)
            open(os.path.join(usr, f), "w").close()
        env = dict(os.environ, PATH=bin_dir + os.pathsep + os.environ["PATH"], FAKE_BENCH=bench)
        env.pop("OUT", None)
        out = os.path.join(d, "out")
        p = subprocess.run([sys.executable, os.path.join(ROOT, "scripts", "gpu_check.py"), "--allow-no-gpu",
                            "--python", sys.executable, "--deps", deps, "--build-dir", os.path.join(d, "build"),
                            "--out", out, "--bench-overhead", "1", "--bench-step-seconds", "0.01", *extra],
                           env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, timeout=300)
        with open(os.path.join(out, "gpu_check.json")) as f:
            return p.returncode, json.load(f), p.stdout

    def test_every_stage_recorded_and_the_ratio_computed(self):
        with tempfile.TemporaryDirectory() as d:
            rc, rep, text = self.run_check(d, "--routers", "topk,dirmoe")
            self.assertEqual(rc, 0, text)
            self.assertEqual(rep["status"], "ok")
            self.assertEqual([s["name"] for s in rep["stages"]], ["preflight", "configure", "build", "tests"])
            self.assertTrue(all(s["status"] == "ok" for s in rep["stages"]), rep["stages"])
            tests = rep["stages"][3]
            self.assertEqual((tests["passed"], tests["failed"]), (2, 0))
            build = rep["stages"][2]
            self.assertTrue(all(build["targets_built"].values()))
            runs = rep["bench"]["runs"]
            self.assertEqual(runs["topk"]["status"], "ok")
            self.assertEqual(runs["dirmoe"]["figures"]["ms_per_step"], 10.0)
            self.assertEqual(rep["bench"]["dirmoe_over_switch"], 1.0)
            self.assertIn("elapsed_seconds", rep)
            with open(os.path.join(d, "out", "gpu_check.log")) as f:
                self.assertIn("bench_suite step --device cuda --scale llama185m --config", f.read())

    def test_benchmark_runs_that_cannot_fit_are_skipped_and_said_so(self):
        with tempfile.TemporaryDirectory() as d:
            # a start-up estimate of 10000 s cannot fit a 480 s budget: every router is skipped
            rc, rep, text = self.run_check(d, "--bench-overhead", "10000")
            self.assertEqual(rc, 0, text)
            runs = rep["bench"]["runs"]
            self.assertEqual(sorted(runs), ["dirmoe", "dirmoe_alpha_fp32", "dirmoe_operators", "remoe", "sparsemixer",
                                            "topk"])
            for r in runs.values():
                self.assertEqual(r["status"], "skipped")
                self.assertIn("needed for 10 steps", r["reason"])
            self.assertNotIn("dirmoe_over_switch", rep["bench"])

    def test_a_missing_prefix_stops_at_preflight_with_what_to_do(self):
        with tempfile.TemporaryDirectory() as d:
            out = os.path.join(d, "out")
            p = subprocess.run([sys.executable, os.path.join(ROOT, "scripts", "gpu_check.py"), "--allow-no-gpu",
                                "--python", sys.executable, "--deps", os.path.join(d, "nothing"),
                                "--build-dir", os.path.join(d, "build"), "--out", out],
                               stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, timeout=300)
            self.assertEqual(p.returncode, 1)
            with open(os.path.join(out, "gpu_check.json")) as f:
                rep = json.load(f)
            self.assertEqual(rep["status"], "failed")
            self.assertEqual([s["name"] for s in rep["stages"]], ["preflight"])
            self.assertIn("scripts/gpu_deps.sh", " ".join(rep["stages"][0]["problems"]))


class DryRunTest(unittest.TestCase):
    def test_dry_run_prints_the_plan_and_writes_nothing(self):
        with tempfile.TemporaryDirectory() as d:
            out = os.path.join(d, "out")
            p = subprocess.run(["bash", os.path.join(ROOT, "scripts", "gpu_check.sh"), "--dry-run", "--out", out,
                                "--build-dir", os.path.join(d, "build"), "--jobs", "16"],
                               stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, timeout=300)
            self.assertEqual(p.returncode, 0, p.stdout)
            text = p.stdout
            for expected in ("would run (configure", "-DCMAKE_DISABLE_FIND_PACKAGE_PkgConfig=ON",
                             "would run (build", "-j 16 --target dirmoe_gpu_tests bench_suite",
                             "would run (gpu tests", "ctest --test-dir", "-L gpu",
                             "bench topk: ", "llama185m_switch.json", "llama185m_dirmoe.json",
                             "bench dirmoe_alpha_fp32: shortened", "--set router.dirmoe.alpha_mlp_precision=fp32",
                             "bench dirmoe_operators: shortened", "--cuda-element-kernels false",
                             "dry run done"):
                self.assertIn(expected, text)
            self.assertFalse(os.path.exists(out))
            self.assertFalse(os.path.exists(os.path.join(d, "build")))


if __name__ == "__main__":
    unittest.main(verbosity=2)
