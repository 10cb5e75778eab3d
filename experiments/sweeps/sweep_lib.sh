# Shared by the sweep scripts (sourced, not run): one resume-safe run = train → eval → analyze,
# and a small job pool. The caller sets: bin, threads, data, task_dir, eval_tasks, eval_sets[],
# analyze_tokens.
#
# Resume rules, per run directory:
#   - summary.json with "status": "finished" and the requested max_steps: training is skipped;
#     a finished run with a different max_steps is an error (its schedule was different), not a
#     silent mix of budgets in one table.
#   - anything else: dirmoe-train --resume, which continues from the newest valid checkpoint or
#     starts at step 0 (dropping metric lines written after that checkpoint).
#   - eval.json and analysis/routing.h5 are written atomically by their tools, so a file that
#     exists is complete; each is redone only when missing.

sweep_require_tools() {
  local tool
  for tool in dirmoe-train dirmoe-eval dirmoe-analyze; do
    [ -x "$bin/$tool" ] || { echo "$(basename "$0"): $bin/$tool not found; run 'make build' first" >&2; exit 2; }
  done
}

# The value of train.max_steps a run will use: the last --set train.max_steps=N, else the config's.
sweep_max_steps() {  # config sets...
  local config=$1 steps="" arg
  shift
  for arg in "$@"; do
    case "$arg" in train.max_steps=*) steps=${arg#train.max_steps=} ;; esac
  done
  [ -n "$steps" ] || steps=$(sed -n 's/.*"max_steps": *\([0-9][0-9]*\).*/\1/p' "$config" | head -1)
  echo "$steps"
}

# sweep_run_one LABEL DIR CONFIG [--set k=v ...]: train (or resume), eval, analyze one run.
sweep_run_one() {
  local label=$1 dir=$2 config=$3
  shift 3
  local sets=("$@")
  [ -f "$config" ] || { echo "[$label] no config $config" >&2; return 1; }
  mkdir -p "$dir"
  [ -n "$data" ] && sets+=(--set "data.dir=$data")
  local want
  want=$(sweep_max_steps "$config" "${sets[@]}")
  if grep -q '"status": "finished"' "$dir/summary.json" 2>/dev/null; then
    local have
    have=$(sed -n 's/.*"max_steps": *\([0-9][0-9]*\).*/\1/p' "$dir/summary.json" | head -1)
    if [ -n "$want" ] && [ "$have" != "$want" ]; then
      echo "[$label] $dir finished with max_steps $have but $want were asked for; use another --out or delete $dir" >&2
      return 1
    fi
    echo "[$label] trained (kept)"
  else
    local how="train"
    [ -f "$dir/config.json" ] && how="resume"
    echo "[$label] $how"
    "$bin/dirmoe-train" --config "$config" --out "$dir" "${sets[@]}" --resume >> "$dir/train.log" 2>&1 \
      || { echo "[$label] training failed; see $dir/train.log" >&2; return 1; }
  fi
  local data_args=()
  [ -n "$data" ] && data_args=(--data "$data")
  if [ ! -f "$dir/eval.json" ]; then
    echo "[$label] eval"
    local task_args=()
    [ -n "$task_dir" ] && task_args=(--task-dir "$task_dir")
    OMP_NUM_THREADS=$threads "$bin/dirmoe-eval" --checkpoint "$dir" --tasks "$eval_tasks" "${task_args[@]}" \
      "${eval_sets[@]}" "${data_args[@]}" --out "$dir/eval.json" > "$dir/eval.log" 2>&1 \
      || { echo "[$label] eval failed; see $dir/eval.log" >&2; return 1; }
  fi
  if [ ! -f "$dir/analysis/routing.h5" ]; then
    echo "[$label] analyze"
    OMP_NUM_THREADS=$threads "$bin/dirmoe-analyze" --checkpoint "$dir" --split validation --tokens "$analyze_tokens" \
      "${data_args[@]}" --out "$dir/analysis" > "$dir/analyze.log" 2>&1 \
      || { echo "[$label] analyze failed; see $dir/analyze.log" >&2; return 1; }
  fi
  echo "[$label] done"
}

# Zero-shot tasks whose files are present in task_dir join the built-in held-out tasks.
sweep_default_tasks() {
  local tasks="heldout_cloze,heldout_choice" t
  if [ -n "$task_dir" ]; then
    for t in arc_easy arc_challenge boolq hellaswag lambada_openai piqa race winogrande openbookqa sciq; do
      [ -f "$task_dir/$t.jsonl" ] && tasks+=",$t"
    done
  fi
  echo "$tasks"
}

# A pool of at most $jobs background runs: sweep_spawn CMD...; sweep_wait_all waits for the rest
# and returns non-zero when any run failed (the others go on regardless).
sweep_fail_log=$(mktemp)
trap 'rm -f "$sweep_fail_log"' EXIT
sweep_spawn() {
  { "$@" || echo "$*" >> "$sweep_fail_log"; } &
  while (( $(jobs -rp | wc -l) >= jobs )); do wait -n || true; done
}
sweep_wait_all() {
  wait
  [ ! -s "$sweep_fail_log" ]
}
