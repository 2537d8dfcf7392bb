#!/usr/bin/env bash
# Bit flips in SmolLM2-135M's stored weights with triple modular redundancy chosen by LRP relevance,
# gradient or Wanda scores, magnitude or at random, at the same overhead (docs/results/faults.md).
#
#   Relevance: `workbench attribute --method lrp --abs-per-token` on SAMPLES random windows of SEQLEN_CAL tokens of
#   the C4 validation sample (calibration text disjoint from the evaluation text); with SCORES=lrp,gradient,wanda also
#   `attribute --method gradient --abs-per-token` and `--method wanda` on the same windows. Faults: `workbench faults` with
#   STORAGE storage of the decoder linear weights, BERS, TRIALS trials per (BER, criterion) — the same flips for every
#   criterion of a trial —, perplexity on the first WINDOWS windows of 512 tokens of WikiText-2 test, for each
#   protected fraction in FRACTIONS. The table is built here from each run's summary lines (bash and awk only).
#
#   METRIC=task: IOI accuracy instead of perplexity. The evaluation set is `tasks ioi --n IOI_N --seed 1`; the
#   protection scores are, for each method of IOI_SCORES, that method on a disjoint IOI set (`tasks ioi --n IOI_CAL --seed
#   0`, `attribute --prompts --method M`, the logit difference IO − S; --abs-per-token except wanda), followed by the C4
#   scores of SCORES (SCORES= empty: none); CRITERIA (e.g. none,scores) restricts `--criteria`; a trial fails when
#   accuracy < FLOOR.
#
# Resumable: a step whose output exists is skipped (both commands write atomically). The regenerated faults.md keeps
# the hand-written sections of the existing one (everything from its first "## Reading" heading on).
#
# Knobs (environment):
#   METRIC=perplexity (or task: IOI_N=64 IOI_CAL=32 FLOOR=0.85 IOI_SCORES=lrp)  CRITERIA=<faults --criteria, default all>
#   BERS=3e-7,1e-6 TRIALS=5 WINDOWS=4 FRACTIONS="0.01 0.05" STORAGE=q4_1 SAMPLES=16 SEQLEN_CAL=128 SEED=0 SCORES=lrp
#   (SCORES: comma-separated score methods, each one protection criterion; runs with more than lrp get a -SCORES suffix)
#   WORKBENCH_BIN=.build/release/workbench  MODEL=models/SmolLM2-135M-Instruct.Q4_1.gguf
#   WORKBENCH_ASSETS=../shared/assets  OUT=out/experiments/faults  RESULTS=docs/results
#
#   mkdir -p out/experiments/faults && nohup nice -n 10 scripts/experiments/faults.sh > out/experiments/faults/log.txt 2>&1 &
set -euo pipefail

main() {
REPO="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
cd "$REPO"
BERS="${BERS:-3e-7,1e-6}"; TRIALS="${TRIALS:-5}"; WINDOWS="${WINDOWS:-4}"; FRACTIONS="${FRACTIONS:-0.01 0.05}"
STORAGE="${STORAGE:-q4_1}"; SAMPLES="${SAMPLES:-16}"; SEQLEN_CAL="${SEQLEN_CAL:-128}"; SEED="${SEED:-0}"; SCORES="${SCORES-lrp}"
METRIC="${METRIC:-perplexity}"; IOI_N="${IOI_N:-64}"; IOI_CAL="${IOI_CAL:-32}"; FLOOR="${FLOOR:-0.85}"; IOI_SCORES="${IOI_SCORES:-lrp}"
CRITERIA="${CRITERIA:-}"
WORKBENCH_BIN="${WORKBENCH_BIN:-$REPO/.build/release/workbench}"
MODEL="${MODEL:-models/SmolLM2-135M-Instruct.Q4_1.gguf}"
export WORKBENCH_ASSETS="${WORKBENCH_ASSETS:-$REPO/../shared/assets}"
OUT="${OUT:-out/experiments/faults}"
RESULTS="${RESULTS:-docs/results}"
mkdir -p "$OUT" "$RESULTS"

PROTECT=""; prefix=""; metric_args=(--windows "$WINDOWS" --seqlen 512)
if [ "$METRIC" = task ]; then
  EVAL="$OUT/ioi-eval-s1-$IOI_N.jsonl"; CAL="$OUT/ioi-cal-s0-$IOI_CAL.jsonl"
  [ -f "$EVAL" ] || "$WORKBENCH_BIN" tasks ioi --model "$MODEL" --n "$IOI_N" --seed 1 --out "$EVAL"
  [ -f "$CAL" ] || "$WORKBENCH_BIN" tasks ioi --model "$MODEL" --n "$IOI_CAL" --seed 0 --out "$CAL"
  for method in ${IOI_SCORES//,/ }; do
    REL="$OUT/$method-ioi-s0-$IOI_CAL.safetensors"
    if [ ! -f "$REL" ]; then
      echo "== attribute $method on IOI ($(date -u +%H:%M:%S))"
      agg=(--abs-per-token); [ "$method" = wanda ] && agg=()
      [ -f "$REL.partial" ] && agg+=(--resume)   # an interrupted attribution continues (bit-identical)
      "$WORKBENCH_BIN" attribute --model "$MODEL" --prompts "$CAL" --method "$method" "${agg[@]}" --out "$REL"
    fi
    PROTECT="${PROTECT:+$PROTECT,}$REL"
  done
  prefix="ioi-"; metric_args=(--metric task --prompts "$EVAL" --floor "$FLOOR")
fi
for method in ${SCORES//,/ }; do
  REL="$OUT/$method-c4-$SAMPLES-$SEQLEN_CAL.safetensors"
  if [ ! -f "$REL" ]; then
    echo "== attribute $method ($(date -u +%H:%M:%S))"
    agg=(--abs-per-token); [ "$method" = wanda ] && agg=()
    [ -f "$REL.partial" ] && agg+=(--resume)
    "$WORKBENCH_BIN" attribute --model "$MODEL" --text "$WORKBENCH_ASSETS/eval/c4/c4_pfdecoding_1480.jsonl" --seqlen "$SEQLEN_CAL" \
      --samples "$SAMPLES" --seed 0 --method "$method" "${agg[@]}" --out "$REL"
  fi
  PROTECT="${PROTECT:+$PROTECT,}$REL"
done
suffix=""; [ "$SCORES" != lrp ] && suffix="-${SCORES//,/-}"
[ "$METRIC" = task ] && suffix="-${IOI_SCORES//,/-}ioi${SCORES:+-${SCORES//,/-}}"
crit_args=(); [ -n "$CRITERIA" ] && { crit_args=(--criteria "$CRITERIA"); suffix="$suffix-${CRITERIA//,/-}"; }

for f in $FRACTIONS; do
  run="$OUT/$prefix$STORAGE-ber-$BERS-protect-$f$suffix"
  keep="$RESULTS/faults/$(basename "${run//,/_}")"   # the committed copy of the report and page (BER list's commas → _)
  if [ -f "$run.json" ]; then
    echo "skip $run (done)"
    [ -f "$keep.json" ] || { mkdir -p "$RESULTS/faults"; cp "$run.json" "$keep.json"; cp "$run.html" "$keep.html"; }
    continue
  fi
  echo "== $run ($(date -u +%H:%M:%S))"
  start=$(date +%s)
  "$WORKBENCH_BIN" faults --model "$MODEL" --storage "$STORAGE" --ber "$BERS" --trials "$TRIALS" --seed "$SEED" \
    --protect "$PROTECT" --protect-fraction "$f" "${metric_args[@]}" "${crit_args[@]}" --out "$run.json" > "$run.stdout"
  echo "$(( $(date +%s) - start ))" > "$run.seconds"; echo "$TRIALS" > "$run.trials"
  # What the report's heading names as the scores (the criteria labels are the score files' methods, in --protect order).
  if [ "$METRIC" = task ]; then
    desc=""; for m in ${IOI_SCORES//,/ }; do desc="${desc:+$desc, }$m (IOI)"; done
    for m in ${SCORES//,/ }; do desc="${desc:+$desc, }$m (C4)"; done
    echo "$desc${CRITERIA:+; criteria $CRITERIA}" > "$run.criteria"
  fi
  cat "$run.stdout"
  # The JSON report is kept beside the page: `workbench faults --render` redraws the page from it without rerunning trials.
  mkdir -p "$RESULTS/faults"; cp "$run.json" "$keep.json"; cp "$run.html" "$keep.html"
done

handwritten=""; earlier=""
if [ -f "$RESULTS/faults.md" ]; then
  handwritten="$(awk '/^## Reading/ { on = 1 } on' "$RESULTS/faults.md")"
  # The generated sections of the existing faults.md: those of runs whose files are not in $OUT (run in another worktree
  # or session) are kept as they are, so that regenerating never drops a finished run.
  earlier="$(awk '/^## / { on = ($0 ~ /^## (perplexity|IOI accuracy):/) } on' "$RESULTS/faults.md")"
fi
{ report; if [ -n "$handwritten" ]; then printf '\n%s\n' "$handwritten"; fi; } > "$RESULTS/faults.md.tmp"
mv "$RESULTS/faults.md.tmp" "$RESULTS/faults.md"
echo "wrote $RESULTS/faults.md"
}

report() {
  echo "# Bit flips with relevance-selected triple modular redundancy (SmolLM2-135M)"
  echo
  echo "Generated by \`scripts/experiments/faults.sh\` on $(date -u +%Y-%m-%d) (reduced run: see Limits)."
  echo
  echo "- **Model**: \`$MODEL\` (SmolLM2-135M-Instruct, Q4_1 GGUF)."
  echo "- **Storage**: the decoder linear weights (q, k, v, o, gate, up, down) encoded as $STORAGE (values and the f16 block"
  echo "  scale d and minimum m can flip); embeddings, norms and biases are not faulted."
  echo "- **Metric / split**: perplexity (wanda protocol) on the first $WINDOWS windows of 512 tokens of WikiText-2 *test*;"
  echo "  a trial fails when perplexity > 2 × dense or is not finite."
  echo "- **Scores**: AttnLRP (\`attribute --method lrp --abs-per-token\`), and in runs marked with them gradient"
  echo "  (\`--method gradient --abs-per-token\`, Σ_t |W·∂y/∂W|) and Wanda (\`--method wanda\`, |W|·‖X‖), each on $SAMPLES random"
  echo "  windows of $SEQLEN_CAL tokens of the C4 validation sample (\`c4_pfdecoding_1480.jsonl\`, seed 0) — calibration disjoint"
  echo "  from the evaluation text."
  echo "- **Protection**: the top weights by |R| (LRP), by |W| (magnitude) or by a seeded random score are stored three"
  echo "  times and read by bitwise majority vote; each criterion gets the same bit budget (fraction of the stored bits;"
  echo "  a protected weight's block scale is protected with it and counts against the budget); none = no protection."
  echo "- **Trials**: $TRIALS per (BER, criterion), seed $SEED; a trial's primary flips are the same for every criterion"
  echo "  (paired). Percentiles are over trials (linear interpolation); a non-finite perplexity counts as the worst value."
  echo "  Gain = reliability (1 − failed fraction) minus that of no protection, in percentage points."
  echo
  echo "- **IOI runs** (\`METRIC=task\`, headings \"IOI accuracy\"): accuracy (logit(IO) > logit(S) at the last position) on"
  echo "  $IOI_N prompts of \`workbench tasks ioi --seed 1\` (ACDC BABA/ABBA templates); protection scores: LRP of the logit"
  echo "  difference IO − S (\`attribute --prompts --method lrp --abs-per-token\`) on $IOI_CAL *disjoint* prompts (\`--seed 0\`),"
  echo "  named lrp, then the C4 LRP scores above, named lrp#2; in runs that name them, gradient (\`--method gradient"
  echo "  --abs-per-token\`) and Wanda (\`--method wanda\`) on the same $IOI_CAL IOI prompts (criteria gradient, wanda); a trial"
  echo "  fails when accuracy < $FLOOR. Criteria are paired across runs (same seed, same flips), so rows of different runs compare."
  echo
  # Every finished run of this storage (BER sets and fractions of earlier invocations included), perplexity then IOI;
  # before them the earlier sections whose runs are not here (same heading = same run: the one here replaces it).
  local new; new="$(sections)"
  if [ -n "$earlier" ]; then
    awk 'NR == FNR { if (/^## /) h[$0] = 1; next } /^## / { on = !($0 in h) } on' <(printf '%s\n' "$new") <(printf '%s\n' "$earlier")
  fi
  printf '%s\n' "$new"
  echo "## Limits"
  echo
  echo "- Reduced: the trials in each heading (perplexity: $WINDOWS evaluation windows per point) and the BERs there; the failed"
  echo "  fractions have a resolution of 1/trials."
  echo "- The machine was shared and loaded; run times are not meaningful as absolutes."
}

sections() {
  for stdout in "$OUT/$STORAGE"-ber-*-protect-*.stdout "$OUT/ioi-$STORAGE"-ber-*-protect-*.stdout; do
    run="${stdout%.stdout}"
    [ -f "$run.json" ] || continue
    bers="${run#*-ber-}"; bers="${bers%-protect-*}"; f="${run##*-protect-}"; crit="lrp"
    case "$f" in *-*) crit="${f#*-}"; crit="${crit//-/, }"; f="${f%%-*}";; esac
    trials=5; [ -f "$run.trials" ] && trials="$(cat "$run.trials")"
    what="perplexity"; col="median ppl"
    case "$run" in */ioi-*) what="IOI accuracy"; col="median accuracy"; crit="lrp (IOI), lrp#2 (C4 LRP)"
                             [ -f "$run.criteria" ] && crit="$(cat "$run.criteria")";; esac
    echo "## $what: BER $bers, protected fraction $f, scores $crit, $trials trials ($(awk '{printf "%d", $1/60}' "$run.seconds") min)"
    echo
    awk '/^dense/ { printf "Dense (no faults, %s storage): %s %s.\n\n", s, w, $3 }' s="$STORAGE" w="$what" "$run.stdout"
    echo "| BER | criterion | $col | p10 | p90 | failed | gain vs none | protected weights | overhead | flips / trial | bits read wrong / trial |"
    echo "|---:|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|"
    awk -F', ' '/^BER / {
      split($1, h, " "); crit = h[3]; sub(/:$/, "", crit)
      n = split($0, parts, ", ")
      for (i = 1; i <= n; i++) { split(parts[i], kv, " "); v[kv[1]] = kv[2] }
      printf "| %s | %s | %s | %s | %s | %s %% | %s pp | %s | %s %% | %s | %s |\n", h[2], crit, h[5], v["p10"], v["p90"], v["failed"], v["gain"], v["protected"], v["overhead"], v["flips"], v["wrong-read"]
    }' "$run.stdout"
    echo
  done
}

main "$@"
