"""Runs lm-eval-harness (its Python API) on exported checkpoints and compares it item by item with
`dirmoe-eval --log-samples`.

For each task the harness's own task definition is used (an `include:` of the yaml shipped with
the pinned lm-eval release); only the dataset source is overridden, to the local JSONL files of
TASK_DIR (tests/cli/tasks_to_hf_layout.py). Each checkpoint is loaded through its exported remote
code (HFLM with trust_remote_code=True). Per item: the contexts and continuations must be the same
strings, the log-likelihoods agree to 1e-4, is_greedy, acc and acc_norm are identical.

usage: harness_compare.py TASK_DIR WORK_DIR LABEL=EXPORT_DIR=SAMPLES.jsonl ...
Prints one line per checkpoint and task with the largest |ΔLL|; exits 1 on any disagreement."""
import os
import sys

WORK = sys.argv[2]
os.environ["HF_HUB_OFFLINE"] = "1"
os.environ["HF_DATASETS_OFFLINE"] = "1"
os.environ["HF_HOME"] = os.path.join(WORK, "hf_home")
os.environ.setdefault("TRANSFORMERS_VERBOSITY", "error")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

import json  # noqa: E402
import logging  # noqa: E402

import lm_eval  # noqa: E402
from lm_eval.models.huggingface import HFLM  # noqa: E402
from lm_eval.tasks import TaskManager  # noqa: E402

logging.getLogger("lm_eval").setLevel(logging.ERROR)

# task -> (the harness yaml, relative to lm_eval/tasks; the split it evaluates)
TASKS = {
    "arc_easy": ("arc/arc_easy.yaml", "test"),
    "arc_challenge": ("arc/arc_challenge.yaml", "test"),
    "boolq": ("super_glue/boolq/default.yaml", "validation"),
    "hellaswag": ("hellaswag/hellaswag.yaml", "validation"),
    "lambada_openai": ("lambada/lambada_openai.yaml", "test"),
    "piqa": ("piqa/piqa.yaml", "validation"),
    "race": ("race/race.yaml", "test"),
    "winogrande": ("winogrande/default.yaml", "validation"),
    "openbookqa": ("openbookqa/openbookqa.yaml", "test"),
    "sciq": ("sciq/sciq.yaml", "test"),
}
TOLERANCE = 1e-4


def write_yamls(task_dir, yaml_dir):
    """One yaml per task: the harness's definition, the dataset read from local JSON."""
    tasks_root = os.path.join(os.path.dirname(lm_eval.__file__), "tasks")
    os.makedirs(yaml_dir, exist_ok=True)
    for task, (yaml_rel, split) in TASKS.items():
        data = os.path.abspath(os.path.join(task_dir, task + ".jsonl"))
        lines = [
            f"include: {os.path.join(tasks_root, yaml_rel)}",
            f"task: {task}",
            "tag: []",
            "dataset_path: json",
            "dataset_name: null",
            "dataset_kwargs:",
            "  data_files:",
            f"    {split}: {json.dumps(data)}",
            "training_split: null",
            "validation_split: " + ("validation" if split == "validation" else "null"),
            "test_split: " + ("test" if split == "test" else "null"),
            "fewshot_split: null",
        ]
        with open(os.path.join(yaml_dir, task + ".yaml"), "w") as f:
            f.write("\n".join(lines) + "\n")


def harness_items(export_dir, task_manager):
    lm = HFLM(pretrained=export_dir, trust_remote_code=True, device="cpu", dtype="float32", batch_size=8)
    out = lm_eval.simple_evaluate(model=lm, tasks=list(TASKS), task_manager=task_manager, num_fewshot=0,
                                  log_samples=True, bootstrap_iters=0)
    items = {}
    for task, samples in out["samples"].items():
        for s in samples:
            items[(task, s["doc_id"])] = s
    return items


def compare(label, export_dir, samples_path, task_manager):
    ours = {}
    with open(samples_path, encoding="utf-8") as f:
        for line in f:
            r = json.loads(line)
            ours[(r["task"], r["doc_id"])] = r
    theirs = harness_items(export_dir, task_manager)
    problems = []
    if set(ours) != set(theirs):
        problems.append(f"items differ: only dirmoe {sorted(set(ours) - set(theirs))}, "
                        f"only harness {sorted(set(theirs) - set(ours))}")
    worst = {task: 0.0 for task in TASKS}
    for key in sorted(set(ours) & set(theirs)):
        a, h = ours[key], theirs[key]
        where = f"{label} {key[0]} doc {key[1]}"
        contexts = a["context"] if isinstance(a["context"], list) else [a["context"]] * len(a["continuations"])
        if [tuple(x) for x in h["arguments"]] != list(zip(contexts, a["continuations"])):
            problems.append(f"{where}: requests differ\n  dirmoe  {list(zip(contexts, a['continuations']))}\n"
                            f"  harness {h['arguments']}")
            continue
        lls = [r[0] for r in h["filtered_resps"]]
        greedy = [bool(r[1]) for r in h["filtered_resps"]]
        delta = max(abs(x - y) for x, y in zip(lls, a["loglikelihoods"]))
        worst[key[0]] = max(worst[key[0]], delta)
        if delta > TOLERANCE:
            problems.append(f"{where}: log-likelihoods {a['loglikelihoods']} vs {lls}")
        if greedy != a["is_greedy"]:
            problems.append(f"{where}: is_greedy {a['is_greedy']} vs {greedy}")
        for metric in ("acc", "acc_norm"):
            if metric in h and (metric not in a or float(h[metric]) != float(a[metric])):
                problems.append(f"{where}: {metric} {a.get(metric)} vs {h[metric]}")
        if isinstance(h["target"], int) and h["target"] != a["target"]:
            problems.append(f"{where}: target {a['target']} vs {h['target']}")
    for task, delta in worst.items():
        n = sum(1 for k in ours if k[0] == task)
        print(f"harness vs dirmoe-eval: {label:<12} {task:<15} items {n:2d}  max |dLL| {delta:.2e}")
    return problems


def main():
    task_dir = sys.argv[1]
    yaml_dir = os.path.join(WORK, "harness_tasks")
    write_yamls(task_dir, yaml_dir)
    task_manager = TaskManager(include_path=yaml_dir, include_defaults=False)
    problems = []
    for spec in sys.argv[3:]:
        label, export_dir, samples_path = spec.split("=", 2)
        problems += compare(label, export_dir, samples_path, task_manager)
    for p in problems:
        print("MISMATCH", p)
    sys.exit(1 if problems else 0)


main()
