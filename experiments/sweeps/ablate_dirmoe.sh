#!/usr/bin/env bash
# DirMoE ablations (docs/dirmoe.md "The collapse study"): the recipe as it is, the first recipe and
# the paper's constants (these pin every setting the study measures), and one change at a time to
# the recipe for each hypothesis.
#
#   experiments/sweeps/ablate_dirmoe.sh [--scale tiny|185m] [--seeds N] [--out DIR] [--jobs J]
#        [--steps N] [--data DIR] [--task-dir DIR] [--tasks a,b] [--variants "chosen old ..."]
#        [--set a.b=v ...] [--eval-set a.b=v ...] [--analyze-tokens N] [--no-eval]
#
# --no-eval skips dirmoe-eval (the table then has no task columns; validation loss comes from training).
#
# Variants (run directories <out>/<variant>/seed<N>/); D = model.d_model of the scale:
#   chosen        the recipe as it is (DirMoE's defaults in config.h; tiny/185m recipes)
#   old           the first recipe: threshold dispatch, r renormalised over the dispatched experts,
#                 σ² = D, λ_s = 10 on the per-token (Σz̃ − k)², gate bias τ_0·logit(k/E), no usage terms
#   h1_all        old with r = normalize(z̃ ⊙ θ) over all E (the paper's r)
#   h1_all_paper  h1_all with the paper's σ² = 1 and λ_s = 0.01
#   h2_var1       chosen with σ² = 1            h2_varsqrt   chosen with σ² = √D
#   h3_token      chosen with the paper's per-token penalty (Σz̃ − k)² instead of E[(n − k)²]
#   h3_batch      chosen with the penalty on the batch mean, (mean_t Σz̃ − k)²
#   h4_uncentred  chosen without the per-token centring of the gate logits
#   h4_bias_tau   chosen with the gate bias at τ_0·logit(k/E) instead of logit(k/E)
#   h5_no_usage   chosen without the usage KL      h5_balance   chosen with Switch's balance term, α = 0.3
#   h6_threshold  chosen with the paper's threshold dispatch (ℓ + g > 0, argmax fallback) instead of top-k
#   soft          chosen with selection = soft (every expert computed; a dense ablation, not in the default set)
#   h14_alpha_bf16  chosen with the α MLP's hidden layer in bf16 (alpha_mlp_precision = bf16, docs/dirmoe.md
#                 H14), on any device      h14_alpha_fp32  the same in float32 on any device
#
# The long-run study (docs/dirmoe.md "Why DirMoE stopped learning"; run with --steps 1000 or 3000 and
# --variants "$long_variants", printed by --list-long):
# Every variant pins the recipe the study started from (β_u = λ_s = 10, losses attached to x), so that the
# table means the same with any revision's defaults:
#   switch        Switch's recipe (tiny_switch.json / llama185m_switch.json), the reference in the same table
#   before_long   the recipe the study started from (the DirMoE default of 1d418fe)
#   h11_u1_s1     usage KL β_u = 1 and sparsity λ_s = 1
#   h11_u1        β_u = 1 only (λ_s = 10)  h11_u03_s03  β_u = λ_s = 0.3
#   h11_decay     β_u = λ_s = 10 at the start, decayed to a tenth with a half-life of 100 steps
#   h8_detach     before_long with the auxiliary losses computed from x detached (they train the router only)
#   h8_detach_weak  h8_detach with β_u = λ_s = 1: the DirMoE default since the study
#   h9_taumin1    h11_u1_s1 with τ_min = 1 instead of 0.5 (combine weights stay further from 1)
#   h12_threshold h11_u1_s1 with the paper's threshold dispatch and the two-sided λ_s controller (×1.2)
#   h13_stretch   h11_u1_s1 with the schedules 3.3× longer (τ decay 0.9985, a_lo η 333, λ^p ramp 667)
# Same resume rules as compare_routers.sh (sweep_lib.sh); results.md/csv compare the variants.
set -euo pipefail
root=$(cd "$(dirname "$0")/../.." && pwd)
bin=${DIRMOE_BIN_DIR:-$root/build/bin}
python=${DIRMOE_PYTHON:-$root/.venv/bin/python}
source "$root/experiments/sweeps/sweep_lib.sh"

out=runs/ablate_dirmoe
variants="chosen old h1_all h1_all_paper h2_var1 h2_varsqrt h3_token h3_batch h4_uncentred h4_bias_tau h5_no_usage h5_balance h6_threshold"
long_variants="switch before_long h11_u1_s1 h11_u03_s03 h8_detach h8_detach_weak h9_taumin1 h12_threshold h13_stretch h11_decay h11_u1"
sweep_parse_args "$@"
set -- "${sweep_rest[@]}"
while (($#)); do
  case "$1" in
    --variants) (($# >= 2)) || { echo "ablate_dirmoe.sh: --variants needs a value" >&2; exit 2; }; variants=$2; shift 2 ;;
    --list-long) echo "$long_variants"; exit 0 ;;
    -h|--help) sweep_usage; exit 0 ;;
    *) echo "ablate_dirmoe.sh: unknown option $1 (see --help)" >&2; exit 2 ;;
  esac
done
d_model=128
[ "$scale" = 185m ] && d_model=768
sqrt_d=$("$python" -c "import math; print(f'{math.sqrt($d_model):.4g}')")

# The settings of the first recipe, and the switches each variant flips (router.dirmoe.*).
p=router.dirmoe
old_sets="$p.selection=hard $p.weights=dispatched $p.recon_variance=$d_model $p.lambda_sparsity=10
  $p.sparsity_penalty=token $p.gate_bias_init=tau_logit $p.center_logits=false $p.usage_kl=0 $p.balance_coef=0
  $p.sparsity_control=0 $p.alpha_mlp_precision=fp32"
long0="$p.usage_kl=10 $p.lambda_sparsity=10 $p.aux_detach_input=false $p.alpha_mlp_precision=fp32"
weak="$p.usage_kl=1 $p.lambda_sparsity=1 $p.aux_detach_input=false $p.alpha_mlp_precision=fp32"
variant_sets() {  # the --set arguments that make a variant, one per word
  case "$1" in
    chosen) ;;
    old) echo "$old_sets" ;;
    h1_all) echo "$old_sets $p.weights=all" ;;
    h1_all_paper) echo "$old_sets $p.weights=all $p.recon_variance=1 $p.lambda_sparsity=0.01" ;;
    h2_var1) echo "$p.recon_variance=1" ;;
    h2_varsqrt) echo "$p.recon_variance=$sqrt_d" ;;
    h3_token) echo "$p.sparsity_penalty=token" ;;
    h3_batch) echo "$p.sparsity_penalty=batch" ;;
    h4_uncentred) echo "$p.center_logits=false" ;;
    h4_bias_tau) echo "$p.gate_bias_init=tau_logit" ;;
    h5_no_usage) echo "$p.usage_kl=0" ;;
    h5_balance) echo "$p.balance_coef=0.3" ;;
    h6_threshold) echo "$p.selection=hard" ;;
    soft) echo "$p.selection=soft" ;;
    h14_alpha_bf16) echo "$p.alpha_mlp_precision=bf16" ;;
    h14_alpha_fp32) echo "$p.alpha_mlp_precision=fp32" ;;
    switch) ;;
    before_long) echo "$long0" ;;
    h11_u1_s1) echo "$weak" ;;
    h11_u1) echo "$long0 $p.usage_kl=1" ;;
    h11_u03_s03) echo "$long0 $p.usage_kl=0.3 $p.lambda_sparsity=0.3" ;;
    h11_decay) echo "$long0 $p.aux_scale_end=0.1 $p.aux_scale_half_life=100" ;;
    h8_detach) echo "$long0 $p.aux_detach_input=true" ;;
    h8_detach_weak) echo "$weak $p.aux_detach_input=true" ;;
    h9_taumin1) echo "$weak $p.tau_min=1" ;;
    h12_threshold) echo "$weak $p.selection=hard $p.sparsity_control=1.2" ;;
    h13_stretch) echo "$weak $p.tau_decay=0.9985 $p.a_lo_eta=333 $p.lambda_p_steps=667" ;;
    *) return 1 ;;
  esac
}
for v in $variants; do
  variant_sets "$v" > /dev/null || { echo "ablate_dirmoe.sh: unknown variant '$v' (see --help)" >&2; exit 2; }
done
sweep_setup

for seed in $(seq 1 "$seeds"); do
  for v in $variants; do
    sets=(--set "train.seed=$seed" --set "train.threads=$threads")
    for s in $(variant_sets "$v"); do sets+=(--set "$s"); done
    sets+=("${extra_sets[@]}")
    [ -n "$steps" ] && sets+=(--set "train.max_steps=$steps")
    recipe=dirmoe
    [ "$v" = switch ] && recipe=switch
    sweep_spawn sweep_run_one "$v seed $seed" "$out/$v/seed$seed" "$(sweep_config $recipe)" "${sets[@]}"
  done
done
failed=0
sweep_wait_all || failed=1

"$python" "$root/analysis/results_table.py" "$out" --routers $variants --label variant
if ((failed)); then
  echo "ablate_dirmoe.sh: some runs failed (see the messages above); re-run the same command to retry them" >&2
  exit 1
fi
