# Shared by the sweep scripts (sourced, not run): their common options, one resume-safe run =
# train → eval → analyze, and a small job pool. The caller sets bin, then calls
# sweep_parse_args "$@" (options it does not know land in sweep_rest) and sweep_setup.
#
# Resume rules, per run directory:
#   - summary.json with "status": "finished" and the requested max_steps: training is skipped;
#     a finished run with a different max_steps is an error (its schedule was different), not a
#     silent mix of budgets in one table.
#   - anything else: dirmoe-train --resume, which continues from the newest valid checkpoint or
#     starts at step 0 (dropping metric lines written after that checkpoint).
#   - eval.json and analysis/routing.h5 are written atomically by their tools, so a file that
#     exists is complete; each is redone only when missing.

# Common options and their defaults.
scale=tiny seeds=1 out="" jobs=1 steps="" data="" task_dir="" eval_tasks="" run_eval=1
analyze_tokens=32768
extra_sets=() eval_sets=() sweep_rest=()
sweep_parse_args() {
  while (($#)); do
    case "$1" in
      --scale|--seeds|--out|--jobs|--steps|--data|--task-dir|--tasks|--analyze-tokens|--set|--eval-set)
        (($# >= 2)) || { echo "$(basename "$0"): $1 needs a value (see --help)" >&2; exit 2; } ;;
    esac
    case "$1" in
      --scale) scale=$2; shift 2 ;;
      --seeds) seeds=$2; shift 2 ;;
      --out) out=$2; shift 2 ;;
      --jobs) jobs=$2; shift 2 ;;
      --steps) steps=$2; shift 2 ;;
      --data) data=$2; shift 2 ;;
      --task-dir) task_dir=$2; shift 2 ;;
      --tasks) eval_tasks=$2; shift 2 ;;
      --analyze-tokens) analyze_tokens=$2; shift 2 ;;
      --set) extra_sets+=(--set "$2"); shift 2 ;;
      --no-eval) run_eval=0; shift ;;
      --eval-set) eval_sets+=(--set "$2"); shift 2 ;;
      *) sweep_rest+=("$1"); shift ;;
    esac
  done
}

# After parsing: check the options, pick threads per run and the tasks, make --out.
sweep_setup() {
  case "$scale" in
    # tiny: a smaller validation sample keeps eval at about a minute per run on 2 cores
    tiny) eval_sets=(--set eval.validation_tokens=65536 "${eval_sets[@]}") ;;
    185m) ;;
    *) echo "$(basename "$0"): --scale must be tiny or 185m" >&2; exit 2 ;;
  esac
  [[ "$seeds" =~ ^[1-9][0-9]*$ ]] || { echo "$(basename "$0"): --seeds must be a positive integer" >&2; exit 2; }
  [[ "$jobs" =~ ^[1-9][0-9]*$ ]] || { echo "$(basename "$0"): --jobs must be a positive integer" >&2; exit 2; }
  [[ -z "$steps" || "$steps" =~ ^[1-9][0-9]*$ ]] || { echo "$(basename "$0"): --steps must be a positive integer" >&2; exit 2; }
  sweep_require_tools
  mkdir -p "$out"
  threads=$(( $(nproc) / jobs )); (( threads >= 1 )) || threads=1
  [ -n "$eval_tasks" ] || eval_tasks=$(sweep_default_tasks)
}

# The config file of a recipe at the chosen scale: experiments/configs/<tiny|llama185m>_<name>.json.
sweep_config() {
  local prefix=tiny
  [ "$scale" = 185m ] && prefix=llama185m
  echo "$root/experiments/configs/${prefix}_$1.json"
}

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
  if ((run_eval)) && [ ! -f "$dir/eval.json" ]; then
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

# --help: the calling script's leading comment block.
sweep_usage() {
  awk 'NR == 1 { next } /^#/ { sub(/^# ?/, ""); print; next } { exit }' "$0"
}
