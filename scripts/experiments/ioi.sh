#!/usr/bin/env bash
# IOI circuits on SmolLM2-135M: LRP (|R| per token and signed) against gradient and random, mean ± SEM over seeds.
#
#   Reference: N_REF × SEEDS prompts of `tasks ioi --seed 0` on the templates REF_TEMPLATES, cut by
#   `circuit --seeds SEEDS` into SEEDS disjoint parts of N_REF (one circuit each). Held-out: N_HELD prompts of
#   `tasks ioi --seed 1` on the same templates (disjoint prompts: each seed owns a hash partition), and N_TPL
#   prompts of `tasks ioi --seed 2` on templates no circuit saw (TPL_TEMPLATES). Both are evaluated at each
#   circuit's size only, afterwards, with `circuit-compare --prompts` (f with m(M) and m(∅) measured on that set,
#   each circuit's own ablation; for zero ablation this is the number `circuit --heldout` reports, tested) — not
#   along the whole curve, which would cost three times the evaluations. RUNS lists granularity:ablation:method
#   triples; each is one `workbench circuit --seeds SEEDS` run. docs/results/ioi.md is built here from each run's
#   seeds.csv (mean ± SEM = sample sd / √n over seeds), the "kept by every seed" line the run printed and the
#   circuit-compare outputs (held-out f, template f, Jaccard between seeds).
#   The hand-written findings in docs/results/ioi.findings.md, if present, are appended.
#
# Resumable: a run whose output directory exists is skipped (circuit writes its directory atomically, so an
# interrupted run leaves nothing and is redone); likewise each held-out evaluation (its .txt is moved in place last).
# No Python: bash and awk only.
#
# Knobs (environment):
#   PROFILE=small|full (full: N_REF=128 N_HELD=256 N_TPL=128 HELDOUT_CURVE=1 OUT=out/experiments/ioi-full
#     REPORT=ioi_full and its own RUNS list: heads/neurons × patch/mean × lrp-apt/random/gradient/lrp-signed/activation)
#   N_REF=32 SEEDS=3 N_HELD=64 N_TPL=32 POINTS=12 THRESHOLD=0.9
#   HELDOUT_CURVE=0: 1 passes --heldout HELD to circuit (held-out f along the curve and a held-out AUC)
#   REPORT=ioi: the report is $RESULTS/$REPORT.md (+ $REPORT/ figures, $REPORT.findings.md appended)  NICE_LEVEL (noted only)
#   REF_TEMPLATES=BABA:0-9,ABBA:0-9  TPL_TEMPLATES=BABA:10-13,ABBA:10-13  (ABBA:14 is near chance on this model: left out)
#   METHODS="lrp-apt lrp-signed gradient random"   (lrp-apt = LRP with |R| per token; lrp-signed = published signed R)
#   RUNS="…" granularity:ablation:method, run in this order (* = every method in METHODS); the default interleaves
#     granularities and methods so the most informative comparisons finish first (see RUNS= below)
#   BUDGET_SECONDS=3300: no run starts after this many seconds (the rest is reported as not run)
#   WORKBENCH_BIN=.build/release/workbench  MODEL=models/SmolLM2-135M-Instruct.Q4_1.gguf
#   WORKBENCH_BLAS_THREADS=1 WORKBENCH_SERIAL=1 (default here): one thread per process. On the shared, oversubscribed
#     machine the two-way split spends half its CPU spin-waiting for a descheduled partner (measured: task-eval of
#     96 prompts, 13.4 s user / 45 s wall split vs 6.7 s user / 33–43 s wall serial); set them empty to split.
#   WORKBENCH_ASSETS=../shared/assets  OUT=out/experiments/ioi  RESULTS=docs/results
#
#   mkdir -p out/experiments/ioi && nohup nice -n 10 scripts/experiments/ioi.sh > out/experiments/ioi/log.txt 2>&1 &
#   mkdir -p out/experiments/ioi-full && PROFILE=full NICE_LEVEL=15 nohup nice -n 15 scripts/experiments/ioi.sh \
#     > out/experiments/ioi-full/log.txt 2>&1 &
#   scripts/experiments/ioi.sh report     # rebuild docs/results/ioi.md from what has finished
#   scripts/experiments/ioi.sh pages      # rerun committed runs, replace circuit.html where the numbers are identical
set -euo pipefail

setup() {
source "${IOI_REPO:-$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)}/scripts/experiments/common.sh"   # IOI_REPO: when run from a copy of this script
exp_env "${IOI_REPO:-}"; exp_one_thread
# PROFILE=full: the issue's size (3 × 128 reference prompts, 256 held-out prompts with held-out curves, 128 on unseen
# templates), its own output directory and report (docs/results/ioi_full.md); the default (small) profile is unchanged.
PROFILE="${PROFILE:-small}"
if [ "$PROFILE" = full ]; then
  N_REF="${N_REF:-128}"; N_HELD="${N_HELD:-256}"; N_TPL="${N_TPL:-128}"; HELDOUT_CURVE="${HELDOUT_CURVE:-1}"
  OUT="${OUT:-out/experiments/ioi-full}"; REPORT="${REPORT:-ioi_full}"; BUDGET_SECONDS="${BUDGET_SECONDS:-100000}"
  RUNS="${RUNS:-heads:patch:lrp-apt heads:patch:random heads:patch:gradient neurons:mean:lrp-apt neurons:mean:random
    heads:mean:lrp-apt heads:patch:lrp-signed heads:patch:activation neurons:patch:lrp-apt neurons:patch:random
    neurons:mean:gradient heads:mean:random heads:mean:gradient neurons:patch:gradient neurons:mean:lrp-signed
    neurons:mean:activation neurons:patch:activation heads:mean:activation heads:mean:lrp-signed neurons:patch:lrp-signed}"
elif [ "$PROFILE" != small ]; then echo "Error: PROFILE must be small or full (got '$PROFILE')" >&2; exit 64
fi
HELDOUT_CURVE="${HELDOUT_CURVE:-0}"; REPORT="${REPORT:-ioi}"
N_REF="${N_REF:-32}"; SEEDS="${SEEDS:-3}"; N_HELD="${N_HELD:-64}"; N_TPL="${N_TPL:-32}"; POINTS="${POINTS:-12}"
THRESHOLD="${THRESHOLD:-0.9}"
REF_TEMPLATES="${REF_TEMPLATES:-BABA:0-9,ABBA:0-9}"; TPL_TEMPLATES="${TPL_TEMPLATES:-BABA:10-13,ABBA:10-13}"
METHODS="${METHODS:-lrp-apt lrp-signed gradient random}"
RUNS="${RUNS:-heads:zero:lrp-apt heads:zero:random heads:zero:gradient neurons:zero:random neurons:zero:lrp-apt heads:zero:lrp-signed
  neurons:zero:gradient heads:mean:lrp-apt heads:mean:random
  weights:zero:lrp-apt weights:zero:random heads:patch:lrp-apt heads:patch:random weights:zero:gradient weights:zero:magnitude
  heads:patch:gradient neurons:patch:lrp-apt neurons:patch:random neurons:patch:gradient
  neurons:zero:lrp-signed heads:mean:gradient heads:mean:lrp-signed weights:zero:lrp-signed}"
BUDGET_SECONDS="${BUDGET_SECONDS:-3300}"
OUT="${OUT:-out/experiments/ioi}"
RESULTS="${RESULTS:-docs/results}"
mkdir -p "$OUT" "$RESULTS"
REF="$OUT/ref-seed0-$((N_REF * SEEDS)).jsonl"
HELD="$OUT/held-seed1-$N_HELD.jsonl"
TPL="$OUT/templates-seed2-$N_TPL.jsonl"
# Every run as granularity:ablation:method, * expanded.
LIST=()
for r in $RUNS; do
  if [ "${r##*:}" = "*" ]; then for m in $METHODS; do LIST+=("${r%:*}:$m"); done; else LIST+=("$r"); fi
done
}

run_all() {
[ -f "$REF" ] || "$WORKBENCH_BIN" tasks ioi --model "$MODEL" --n $((N_REF * SEEDS)) --seed 0 --templates "$REF_TEMPLATES" --out "$REF"
[ -f "$HELD" ] || "$WORKBENCH_BIN" tasks ioi --model "$MODEL" --n "$N_HELD" --seed 1 --templates "$REF_TEMPLATES" --out "$HELD"
[ -f "$TPL" ] || "$WORKBENCH_BIN" tasks ioi --model "$MODEL" --n "$N_TPL" --seed 2 --templates "$TPL_TEMPLATES" --out "$TPL"
local t0 i=0
t0=$(date +%s)
for run in "${LIST[@]}"; do
  i=$((i + 1))
  IFS=: read -r g ablation m <<< "$run"
  local name="$g-$ablation-$m" dir="$OUT/$g-$ablation-$m"
  if [ -d "$dir" ]; then echo "skip $dir (done)"
  elif [ $(( $(date +%s) - t0 )) -ge "$BUDGET_SECONDS" ]; then echo "budget of $BUDGET_SECONDS s spent: $dir not run"; continue
  else
    method_args "$m"
    echo "== [$i/${#LIST[@]}] $dir ($(date -u +%H:%M:%S), $(( $(date +%s) - t0 )) s since start)"
    local start
    start=$(date +%s)
    local held_args=()
    [ "$HELDOUT_CURVE" = 1 ] && held_args=(--heldout "$HELD")
    # A failed run (e.g. a method that cannot score this granularity) is logged and skipped, not fatal: its
    # directory is never created (atomic), so the next invocation retries it.
    if ! "$WORKBENCH_BIN" circuit --model "$MODEL" --prompts "$REF" "${args[@]}" --granularity "$g" \
      --ablation "$ablation" --threshold "$THRESHOLD" --points "$POINTS" --seeds "$SEEDS" "${held_args[@]}" --out "$dir" --quiet \
      > "$OUT/$name.stdout" 2> "$OUT/$name.stderr"; then
      echo "FAILED $dir: $(tail -n 3 "$OUT/$name.stderr")"; continue
    fi
    echo "$(( $(date +%s) - start ))" > "$OUT/$name.seconds"
    cat "$OUT/$name.stdout"
  fi
  local seeds=() s set file
  for ((s = 0; s < SEEDS; s++)); do seeds+=("$dir/seed-$s"); done
  for set in held templates; do
    [ "$set" = held ] && [ "$HELDOUT_CURVE" = 1 ] && continue   # the run measured the held-out curve itself
    [ "$set" = held ] && file="$HELD" || file="$TPL"
    [ -f "$OUT/$name.$set.txt" ] && continue
    "$WORKBENCH_BIN" circuit-compare "${seeds[@]}" --model "$MODEL" --prompts "$file" --quiet > "$OUT/$name.$set.tmp"
    mv "$OUT/$name.$set.tmp" "$OUT/$name.$set.txt"
  done
  report
done
echo "all runs done in $(( $(date +%s) - t0 )) s"
}

# mean ± SEM of the f column circuit-compare printed (one prompt set), and the mean Jaccard between seeds.
compare_f() {
  awk '/^transfer:/ { t = 1; next } t && /^  \[ *[0-9]+\] +-?[0-9.]+(e-?[0-9]+)? *$/ { x[n++] = $NF; s += $NF }
    END { if (n == 0) { print "–"; exit } m = s / n; v = 0; for (i = 0; i < n; i++) v += (x[i] - m) ^ 2
          if (n > 1) printf "%.3f ± %.3f", m, sqrt(v / (n - 1) / n); else printf "%.3f (n = 1)", m }' "$1"
}

report() {
  local md="$RESULTS/$REPORT.md" figs="$RESULTS/$REPORT"
  mkdir -p "$figs"
  {
    if [ "$PROFILE" = full ]; then
      echo "# IOI circuits on SmolLM2-135M-Instruct (Q4_1 GGUF) — full size: 3 × $N_REF reference prompts, held-out curves"
    else
      echo "# IOI circuits on SmolLM2-135M-Instruct (Q4_1 GGUF)"
      echo
      echo "**Size: the small profile** (3 × $N_REF reference prompts, $N_HELD held-out, $N_TPL on unseen templates; held-out f at each"
      echo "circuit's size only). The issue's full size (3 × 128 reference, 256 held-out with held-out curves, 128 on unseen"
      echo "templates) is \`PROFILE=full scripts/experiments/ioi.sh\` → [ioi_full.md](ioi_full.md)."
    fi
    echo
    echo "Generated by \`PROFILE=$PROFILE scripts/experiments/ioi.sh\` ($(date -u +%Y-%m-%d)); release build, run under \`nice -n ${NICE_LEVEL:-10}\` on a"
    echo "2-core machine shared with three other engineers' builds, tests and experiments: wall times are upper bounds."
    echo
    echo "- **Model:** \`$MODEL\` (sha256 in each run's circuit.json)."
    echo "- **Reference:** $((N_REF * SEEDS)) prompts of \`tasks ioi --seed 0 --templates $REF_TEMPLATES\`, cut by"
    echo "  \`circuit --seeds $SEEDS\` into $SEEDS disjoint sets of $N_REF (shuffle with a fixed seed; one circuit per set)."
    echo "- **Held-out (same templates):** $N_HELD prompts of \`tasks ioi --seed 1\` (disjoint prompts), the same for every seed."
    echo "- **Held-out templates:** $N_TPL prompts of \`tasks ioi --seed 2 --templates $TPL_TEMPLATES\` (templates no"
    echo "  circuit saw; ABBA:14 left out, the full model is near chance on it)."
    if [ "$HELDOUT_CURVE" = 1 ]; then
      echo "- **Held-out f (same templates):** along the whole curve (\`circuit --heldout\`): every grid point and the circuit's"
      echo "  size, so there is a held-out AUC; m(M) and m(∅) measured on the held-out set. Mean ablation uses the reference"
      echo "  set's means there too. **Unseen templates:** at each circuit's size only (\`circuit-compare --prompts\`)."
    else
      echo "- **Held-out f:** at each circuit's size only (\`circuit-compare --prompts\`), not along the curve (that would triple"
      echo "  the evaluations): so there is no held-out AUC."
    fi
    echo "- **Metric:** logit difference logit(IO) − logit(S) at the last position; f = (m(C) − m(∅)) / (m(M) − m(∅)),"
    echo "  m(M) and m(∅) measured on each prompt set with the run's ablation. Mean ablation: means over the reference set's"
    if [ "$HELDOUT_CURVE" = 1 ]; then
      echo "  tokens for f ref and the held-out curve; for the unseen-template f, over that set's own tokens (\`circuit-compare\`)."
    else
      echo "  tokens for f ref; for the held-out f, over that held-out set's own tokens (as \`circuit-compare\` measures)."
    fi
    echo "  Patch ablation: every ablated head or neuron output is replaced by its value on the prompt's own ABC-corrupted"
    echo "  counterpart (same length; the three names replaced by three others), so m(∅) is the corrupted run's metric."
    if [ "$PROFILE" = full ]; then   # runs of this profile use circuit's default tolerance (3f8ebd4 on)
      echo "- **Circuit:** smallest k with f_ref ≥ $THRESHOLD (f at 0 and on a log grid of $POINTS kept fractions, then bisection:"
      echo "  exact for heads; for neurons to within 1 % of the circuit's size, \`circuit\`'s default, never below the exact crossing);"
    else                             # the committed small-profile runs (and \`pages\`) bisect exactly
      echo "- **Circuit:** smallest k with f_ref ≥ $THRESHOLD (f at 0 and on a log grid of $POINTS kept fractions, then exact bisection);"
    fi
    echo "  candidates: every head (270), every MLP neuron (46,080) or every weight of every decoder linear (q/k/v/o/gate/up/down,"
    echo "  106,168,320); ranking global, keep the highest signed scores. magnitude = |W| (weights only)."
    echo "- **Methods:** lrp-apt = AttnLRP explaining logit(IO) − logit(S), |R| summed over tokens per prompt"
    echo "  (\`--method lrp --aggregation abs-per-token\`); lrp-signed = the published signed relevance (\`--aggregation signed\`);"
    echo "  gradient = gradient × input, signed (the same backward with plain-gradient rules); random = seeded uniform scores"
    echo "  (seed i for reference set i: $SEEDS draws), the floor any method must beat; activation = mean |activation| of the"
    echo "  head or neuron over the reference tokens (no explained output). Attribution runs once per reference set."
    echo "- **Statistics:** mean ± SEM over the $SEEDS reference sets (SEM = sample sd / √n). Jaccard = mean over pairs of seeds"
    echo "  of |A∩B| / |A∪B| of the kept sets. \"In every seed's top 20\": the units among the 20 best-scored kept units of"
    echo "  every seed (the recurring heads or neurons), in seed 0's order (for random this is chance)."
    echo
    echo "| granularity | ablation | method | circuit size (of all) | kept fraction | f ref | f held-out | f held-out templates | AUC ref | AUC held-out | Jaccard between seeds | kept by every seed | in every seed's top 20 | wall time |"
    echo "|---|---|---|---|---|---|---|---|---|---|---|---|---|---|"
    for run in "${LIST[@]}"; do
      IFS=: read -r g ablation m <<< "$run"
      local name="$g-$ablation-$m"
      local dir="$OUT/$name" csv="$OUT/$name/seeds.csv"
      [ -f "$csv" ] || { echo "| $g | $ablation | $m | (not run) | | | | | | | | | | |"; continue; }
      local total every secs heldf tplf jac aucheld
      total=$(awk -F, 'NR == 2 { print $3 }' "$csv")
      every=$(grep -o 'kept by every seed: [0-9]* [a-z]*' "$dir.stdout" | sed 's/kept by every seed: //' || true)
      secs=$(cat "$dir.seconds" 2>/dev/null || echo "?")
      heldf="–"; tplf="–"; jac="–"; aucheld="–"
      if [ -f "$dir.held.txt" ]; then heldf=$(compare_f "$dir.held.txt"); jac=$(jaccard "$dir.held.txt"); fi
      if [ -f "$dir.templates.txt" ]; then tplf=$(compare_f "$dir.templates.txt"); jac=$(jaccard "$dir.templates.txt"); fi
      if [ "$HELDOUT_CURVE" = 1 ]; then heldf=$(msem_csv "$csv" 7 3); aucheld=$(msem_csv "$csv" 9 3); fi
      echo "| $g | $ablation | $m | $(msem_csv "$csv" 4 1) (of $total) | $(msem_csv "$csv" 5 4) | $(msem_csv "$csv" 6 3) | $heldf | $tplf | $(msem_csv "$csv" 8 3) | $aucheld | $jac | ${every:-–} | $(top_recurring "$dir" 20) | ${secs} s |"
      mkdir -p "$figs/$name"
      rm -f "$figs/$name/seeds.json"
      cp "$dir/seeds.csv" "$dir/circuit.html" "$figs/$name/"
      # A neuron run's seeds.json lists every neuron's recurrence (3–4 MB): it stays in $OUT.
      [ "$g" = neurons ] || cp "$dir/seeds.json" "$figs/$name/"
      cp "$dir/seed-0/curve.svg" "$figs/$name/curve-seed0.svg"
      # Every seed's curve (f and metric, reference and held-out, per grid point): a few kB each.
      for ((s = 0; s < SEEDS; s++)); do cp "$dir/seed-$s/curve.csv" "$figs/$name/curve-seed$s.csv"; done
    done
    echo
    echo "Per run, \`docs/results/ioi/<granularity>-<ablation>-<method>/\`: seeds.csv (per-seed numbers), seeds.json (heads only:"
    echo "mean ± SEM, the mean curve, how many seeds kept each head), circuit.html (curve with ± SEM, head grid or neuron"
    echo "counts) and curve-seed0.svg. Each seed's full output (mask.safetensors, circuit.json, graph.json) and the neuron"
    echo "runs' seeds.json (3–4 MB) are in \`$OUT/\` (not committed)."
    echo
    if [ "$PROFILE" = full ]; then
      echo "**Not run at this size:** every row marked (not run) above (the script is resumable: rerun it to add them) and"
      echo "weight circuits (heavy: one weight curve is several forwards of every linear per point; see ioi.md for 3 × 32)."
    else
      echo "**Not done at this size (3 × $N_REF):** 256 held-out prompts (here $N_HELD + $N_TPL on held-out templates), held-out"
      echo "curves and AUCs (held-out f at the circuit's size only) and every run marked (not run) above. The issue's full size"
      echo "(3 × 128 reference prompts, 256 held-out prompts with held-out curves, 128 on unseen templates, neuron mean"
      echo "ablation, activation scores) is \`PROFILE=full scripts/experiments/ioi.sh\`: [ioi_full.md](ioi_full.md)."
    fi
    if [ -f "$RESULTS/$REPORT.findings.md" ]; then echo; cat "$RESULTS/$REPORT.findings.md"; fi
  } > "$md.tmp"
  mv "$md.tmp" "$md"
  echo "wrote $md"
}

# `ioi.sh pages`: rerun the committed runs of this profile with the current binary into $OUT-pages (same task files,
# same settings) and, where the new seeds.csv is byte-identical to the committed one (the same circuits: same kept
# counts, f and AUC to the last digit), replace the committed circuit.html (and seeds.json) by the new page. A run whose
# numbers differ is reported and left alone. Resumable like run_all. Only RUNS whose results are committed are rerun.
# Bisection is exact (--bisection-tolerance 0), as it was for every committed small-profile run.
pages() {
  local figs="$RESULTS/$REPORT" pout="$OUT-pages" run g ablation m name dir args
  mkdir -p "$pout"
  local pref="$pout/$(basename "$REF")" phold="$pout/$(basename "$HELD")"
  [ -f "$pref" ] || "$WORKBENCH_BIN" tasks ioi --model "$MODEL" --n $((N_REF * SEEDS)) --seed 0 --templates "$REF_TEMPLATES" --out "$pref"
  for run in "${LIST[@]}"; do
    IFS=: read -r g ablation m <<< "$run"
    name="$g-$ablation-$m"; dir="$pout/$name"
    [ -f "$figs/$name/seeds.csv" ] || { echo "$name: nothing committed"; continue; }
    method_args "$m"
    local held_args=()
    [ "$HELDOUT_CURVE" = 1 ] && { [ -f "$phold" ] || "$WORKBENCH_BIN" tasks ioi --model "$MODEL" --n "$N_HELD" --seed 1 \
      --templates "$REF_TEMPLATES" --out "$phold"; held_args=(--heldout "$phold"); }
    if [ ! -d "$dir" ]; then
      echo "== $name ($(date -u +%H:%M:%S))"
      "$WORKBENCH_BIN" circuit --model "$MODEL" --prompts "$pref" "${args[@]}" --granularity "$g" --ablation "$ablation" \
        --threshold "$THRESHOLD" --points "$POINTS" --seeds "$SEEDS" --bisection-tolerance 0 "${held_args[@]}" --out "$dir" --quiet > "$pout/$name.stdout" \
        2> "$pout/$name.stderr" || { echo "FAILED $name: $(tail -n 3 "$pout/$name.stderr")"; continue; }
    fi
    # The first nine columns: later binaries append the settings columns to seeds.csv.
    if cmp -s <(cut -d, -f1-9 "$dir/seeds.csv") <(cut -d, -f1-9 "$figs/$name/seeds.csv"); then
      cp "$dir/circuit.html" "$figs/$name/circuit.html"
      [ "$g" = neurons ] || cp "$dir/seeds.json" "$figs/$name/seeds.json"
      echo "$name: seeds.csv numbers identical, circuit.html replaced"
    else
      echo "$name: seeds.csv DIFFERS from the committed one; page not replaced"; diff "$figs/$name/seeds.csv" "$dir/seeds.csv" || true
    fi
  done
}

setup
case "${1:-}" in
  report) report ;;
  pages) pages ;;
  *) run_all ;;
esac
