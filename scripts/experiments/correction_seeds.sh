#!/usr/bin/env bash
# Toxicity correction over several seeds (issue 14: every headline number as mean ± SEM over seeds).
#
# For each run of RUNS (correction.sh's format) and each seed s of SEEDS, scripts/experiments/correction.sh runs that
# one run (ONLY=name) with SPLIT_SEED=s (a new reference/held-out draw of the 114 toxic prompts, so new scoring AND
# evaluation prompts), SEED=s (the random selection and the sampling stream) into OUT/seed-s. Runs are the outer loop,
# so a partial run has every seed of its first rows. Default rows: contrastive LRP with |R| per token, contrastive
# Wanda and random on 1,000 MLP-input-projection weights (wf-, full RTP protocol), on 100 and 10 MLP neurons (n-,
# n10-, full protocol) and on 20,000 MLP-input-projection weights (w20k-, greedy only). Everything else (sizes,
# controls, guardrails) is correction.sh's; its per-seed report lands in OUT/seed-s/results/, and the per-seed
# evaluate JSON files are copied to RESULTS/correction/seeds/seed-s/.
# Then docs/results/correction_seeds.md (+ docs/results/correction/seeds.json): per (run, count) the per-seed set
# means (reference, held-out, controls, WikiText ppl, C4 loss), and their mean ± SEM over seeds; Δ columns are
# paired (run − that seed's baseline) before averaging.
#
# Resumable: correction.sh skips what exists, and a (seed, run) whose rows are already in RESULTS/correction/seeds.json
# (from an earlier run of this script whose OUT is gone) is not recomputed: its rows are carried over. The source
# model's baseline is evaluated with the first run of RUNS only when that run is computed. SEED0_FROM=DIR takes seed 0's
# rows from the evaluate files of an earlier correction.sh with the same settings (DIR/eval-NAME-{toxic,controls}.json,
# e.g. docs/results/correction: the single-seed table is seed 0) instead of recomputing them: the numbers are the same
# (every random stream is seeded); only the counts of RUNS are kept.
# Knobs: SEEDS="0 1 2" OUT=out/experiments/correction-seeds RESULTS=docs/results SEED0_FROM="" SUMMARY_ONLY=0 (1: only
#   rebuild the tables from what exists, e.g. while another instance runs) COMPUTE="" (run names: compute only these,
#   in RUNS order; the tables still cover every run of RUNS) COMPUTE_SEEDS="$SEEDS" (compute only these seeds; the
#   tables cover SEEDS) RUNS and correction.sh's
#   own (N_GENERAL N_UNDESIRED N_HELDOUT N_CONTROL SAMPLES PPL_WINDOWS PPL_SEQLEN WORKBENCH_BIN …).
# Run:  mkdir -p out/experiments/correction-seeds
#       SEED0_FROM=docs/results/correction nohup nice -n 15 scripts/experiments/correction_seeds.sh \
#         > out/experiments/correction-seeds/log.txt 2>&1 &
set -euo pipefail

REPO="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
cd "$REPO"
SEEDS="${SEEDS:-0 1 2}"
BASE="${OUT:-$REPO/out/experiments/correction-seeds}"; RESULTS="${RESULTS:-$REPO/docs/results}"
SEED0_FROM="${SEED0_FROM:-}"
N_UNDESIRED="${N_UNDESIRED:-16}"; N_CONTROL="${N_CONTROL:-16}"; export N_UNDESIRED N_CONTROL
FC1='mlp\.(gate|up)_proj'
RUNS="${RUNS:-
wf-lrp-abs-fc1;lrp;abs-per-token;weights;$FC1;1000;full
wf-wanda-fc1;wanda;;weights;$FC1;1000;full
wf-random-fc1;random;;weights;$FC1;1000;full
n-lrp-abs;lrp;abs-per-token;neurons;;100;full
n-wanda;wanda;;neurons;;100;full
n-random;random;;neurons;;100;full
w20k-lrp-abs-fc1;lrp;abs-per-token;weights;$FC1;20000;greedy
w20k-wanda-fc1;wanda;;weights;$FC1;20000;greedy
w20k-random-fc1;random;;weights;$FC1;20000;greedy
n10-lrp-abs;lrp;abs-per-token;neurons;;10;full
n10-wanda;wanda;;neurons;;10;full
n10-random;random;;neurons;;10;full
}"
mkdir -p "$BASE" "$RESULTS/correction"
OLD="$RESULTS/correction/seeds.json"; OLDROWS="$BASE/old-rows.jsonl"
if [ -s "$OLD" ]; then jq -c '.rows[]' "$OLD" > "$OLDROWS"; else : > "$OLDROWS"; fi
# rows of an earlier run of this script for (seed, run), if any
old_rows() { jq -c --argjson s "$1" --arg r "$2" 'select(.seed == $s and .run == $r)' "$OLDROWS"; }
mkdir -p "$BASE" "$RESULTS/correction"

seed0() { [ "$1" = 0 ] && [ -n "$SEED0_FROM" ] && [ -s "$SEED0_FROM/eval-$2-controls.json" ]; }
first_run=$(awk -F';' 'NF { print $1; exit }' <<< "$RUNS")
while IFS=';' read -r name _ _ _ _ counts _; do
  [ -n "$name" ] || continue
  [ "${SUMMARY_ONLY:-0}" = 1 ] && continue   # report what exists, compute nothing
  if [ -n "${COMPUTE:-}" ] && ! [[ " $COMPUTE " == *" $name "* ]]; then continue; fi
  for s in ${COMPUTE_SEEDS:-$SEEDS}; do
    d="$BASE/seed-$s"; mkdir -p "$d"
    if seed0 "$s" "$name" || [ -s "$d/eval-$name-controls.json" ] || [ -n "$(old_rows "$s" "$name")" ]; then continue; fi
    echo "== $(date -u +%FT%TZ) seed $s: $name"
    # the baseline is evaluated with the first run only (correction.sh's rule): carried over when that run is
    SPLIT_SEED="$s" SEED="$s" OUT="$d" RESULTS="$d/results" RUNS="$RUNS" ONLY="$name" "$REPO/scripts/experiments/correction.sh" \
      | grep -v '^== .* done:' || true
    mkdir -p "$RESULTS/correction/seeds/seed-$s"
    for f in "$d/eval-$name"-{toxic,controls}.json; do [ -s "$f" ] && cp "$f" "$RESULTS/correction/seeds/seed-$s/"; done
  done
done <<< "$RUNS"

# one JSON line per (seed, run, count) with that seed's set means
summ() {
  local s="$1" name="$2" t="$3" c="$4" which="$5" counts="${6:-}"
  jq -c -s -L "$REPO/scripts/experiments" --argjson seed "$s" --arg run "$name" --arg which "$which" \
    --argjson counts "[${counts}]" \
    --argjson H "$N_UNDESIRED" --argjson C "$N_CONTROL" 'include "seedstats";
    def m(e; f): (e.prompts[0:$H]) as $r | (e.prompts[$H:]) as $h | (f.prompts[0:$C]) as $c | (f.prompts[$C:]) as $n |
      {seed: $seed, run: $run, count: (e.count // 0),
       ref_emt: mean_of($r | map(.max_sample_toxicity)), ref_tp: mean_of($r | map(.max_sample_toxicity | over_half)),
       ref_gtox: mean_of($r | map(.greedy_toxicity)), ref_rur: mean_of($r | map(.rur)),
       held_emt: mean_of($h | map(.max_sample_toxicity)), held_tp: mean_of($h | map(.max_sample_toxicity | over_half)),
       held_gtox: mean_of($h | map(.greedy_toxicity)), held_rur: mean_of($h | map(.rur)),
       chal_gtox: mean_of($c | map(.greedy_toxicity)), nontox_gtox: mean_of($n | map(.greedy_toxicity)),
       nontox_rur: mean_of($n | map(.rur)),
       ppl: e.perplexity.perplexity, c4loss: (if f.perplexity == null then null else (f.perplexity.perplexity | log) end)};
    .[0] as $t | .[1] as $c |
    if $which == "baseline" then m($t.baseline; $c.baseline) | .run = "none (baseline)"
    else [$t.models, $c.models] | transpose[] | select(($counts | length) == 0 or ((.[0].count // 0) as $k | $counts | index($k)))
      | m(.[0]; .[1]) end' "$t" "$c"
}

rows="$BASE/rows.jsonl"; : > "$rows.tmp"
for s in $SEEDS; do
  d="$BASE/seed-$s"
  src="$d"; seed0 "$s" "$first_run" && src="$SEED0_FROM"
  b=$(for f in "$src"/eval-*-toxic.json "$d"/eval-*-toxic.json; do [ -s "$f" ] && jq -e '.baseline != null' "$f" > /dev/null && { echo "$f"; break; }; done || true)
  if [ -n "$b" ] && [ -s "${b%-toxic.json}-controls.json" ]; then summ "$s" baseline "$b" "${b%-toxic.json}-controls.json" baseline >> "$rows.tmp"
  else old_rows "$s" "none (baseline)" >> "$rows.tmp"; fi
  while IFS=';' read -r name _ _ _ _ counts _; do
    [ -n "$name" ] || continue
    src="$d"; seed0 "$s" "$name" && src="$SEED0_FROM"
    t="$src/eval-$name-toxic.json"; c="$src/eval-$name-controls.json"
    if [ -s "$t" ] && [ -s "$c" ]; then summ "$s" "$name" "$t" "$c" run "$counts" >> "$rows.tmp"
    else old_rows "$s" "$name" >> "$rows.tmp"; fi
  done <<< "$RUNS"
done
mv "$rows.tmp" "$rows"

jq -s '{generated_by: "scripts/experiments/correction_seeds.sh", rows: .}' "$rows" > "$RESULTS/correction/seeds.json.tmp"
mv "$RESULTS/correction/seeds.json.tmp" "$RESULTS/correction/seeds.json"
{
  echo "## Seeds: the key toxicity rows over $(echo $SEEDS | wc -w) seeds"
  echo
  echo "Generated by \`scripts/experiments/correction_seeds.sh\` on $(date -u +%F). Same model, sizes, protocols and scorer (the"
  echo "lexical proxy) as the table above; seed s = split seed s (a new reference/held-out draw: new scoring prompts and new"
  echo "evaluation prompts), random-selection seed s and sampling seed s. Seeds: $SEEDS.$([ -n "$SEED0_FROM" ] && echo " Seed 0 is the single-seed table above (the same runs).")"
  echo "Each cell: mean ± SEM **over seeds** of the per-seed set means (n = number of seeds; the prompt-level SEMs are in the"
  echo "per-seed rows of \`docs/results/correction/seeds.json\`). Δ = run − the same seed's baseline, paired, then averaged."
  echo "Runs: \`wf-\` = 1,000 weights and \`w20k-\` = 20,000 weights of the MLP input projections (gate_proj, up_proj; \`w20k-\`"
  echo "greedy only, so no EMT/TP), \`n-\` = 100 and \`n10-\` = 10 whole MLP neurons; LRP = contrastive |R| per token."
  echo
  echo "| run | count | seeds | held EMT | Δ held EMT | held TP | held gtox | Δ held gtox | held RUR | ref EMT | ref gtox | chal gtox | non-tox RUR | WikiText ppl | C4 loss |"
  echo "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|"
  jq -r -s -L "$REPO/scripts/experiments" 'include "seedstats";
    (map(select(.run == "none (baseline)")) | map({key: (.seed | tostring), value: .}) | from_entries) as $base |
    def d(rows; k): rows | map(if $base[.seed | tostring] == null or .[k] == null then null else .[k] - $base[.seed | tostring][k] end);
    group_by([.run != "none (baseline)", .run, .count]) | .[] | . as $g |
    "| \($g[0].run) | \($g[0].count) | \($g | length) | \(pm($g | map(.held_emt))) | \(if $g[0].count == 0 then "–" else pm(d($g; "held_emt")) end) | \(pm($g | map(.held_tp))) | \(pm($g | map(.held_gtox))) | \(if $g[0].count == 0 then "–" else pm(d($g; "held_gtox")) end) | \(pm($g | map(.held_rur))) | \(pm($g | map(.ref_emt))) | \(pm($g | map(.ref_gtox))) | \(pm($g | map(.chal_gtox))) | \(pm($g | map(.nontox_rur))) | \(pm($g | map(.ppl); 2)) | \(pm($g | map(.c4loss))) |"' "$rows"
  echo
  echo "Per seed (held-out EMT / greedy toxicity, WikiText ppl):"
  echo
  jq -r -s 'group_by([.run != "none (baseline)", .run, .count]) | .[] |
    "- \(.[0].run) \(.[0].count): " + (map("seed \(.seed): \(if .held_emt == null then "–" else .held_emt * 1000 | round / 1000 end) / \(.held_gtox * 1000 | round / 1000), \(.ppl * 100 | round / 100)") | join("; "))' "$rows"
} > "$RESULTS/correction_seeds.md.tmp"
mv "$RESULTS/correction_seeds.md.tmp" "$RESULTS/correction_seeds.md"
echo "== $(date -u +%T) done: $RESULTS/correction_seeds.md"
