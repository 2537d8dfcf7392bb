#!/usr/bin/env bash
# Toxicity correction over several seeds (issue 14: every headline number as mean ± SEM over seeds).
#
# For each seed s of SEEDS, scripts/experiments/correction.sh runs the key rows (RUNS below: contrastive LRP with
# |R| per token, contrastive Wanda and random, each on 1,000 MLP-input-projection weights, with the full RTP protocol)
# with SPLIT_SEED=s (a new reference/held-out draw of the 114 toxic prompts, so new scoring AND evaluation prompts),
# SEED=s (the random selection and the sampling stream) into OUT/seed-s. Everything else (sizes, controls,
# guardrails) is correction.sh's, and its per-seed report lands in OUT/seed-s/results/.
# Then docs/results/correction_seeds.md (+ docs/results/correction/seeds.json): per (run, count) the per-seed set
# means (reference, held-out, controls, WikiText ppl, C4 loss), and their mean ± SEM over seeds; Δ columns are
# paired (run − that seed's baseline) before averaging.
#
# Resumable (correction.sh skips what exists). SEED0_FROM=DIR copies seed 0's sets and evaluations from an earlier
# correction.sh output with the same settings (its wf-… runs and the baseline evaluated with its first run) instead of
# recomputing them: the numbers are the same (every random stream is seeded).
# Knobs: SEEDS="0 1 2" OUT=out/experiments/correction-seeds RESULTS=docs/results SEED0_FROM="" RUNS (correction.sh's
#   format) and correction.sh's own (N_GENERAL N_UNDESIRED N_HELDOUT N_CONTROL SAMPLES PPL_WINDOWS PPL_SEQLEN …).
# Run:  mkdir -p out/experiments/correction-seeds
#       nohup nice -n 10 scripts/experiments/correction_seeds.sh > out/experiments/correction-seeds/log.txt 2>&1 &
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
}"
mkdir -p "$BASE" "$RESULTS/correction"

for s in $SEEDS; do
  d="$BASE/seed-$s"; mkdir -p "$d"
  if [ "$s" = 0 ] && [ -n "$SEED0_FROM" ] && [ ! -s "$d/heldout.jsonl" ]; then
    echo "== $(date -u +%T) seed 0: sets and evaluations copied from $SEED0_FROM"
    cp "$SEED0_FROM"/{reference.jsonl,heldout.jsonl,toxic.jsonl,controls.jsonl,c4.txt} "$d/"
    while IFS=';' read -r name _; do
      [ -n "$name" ] || continue
      cp "$SEED0_FROM/eval-$name"-{toxic,controls}.{json,html} "$d/"
    done <<< "$RUNS"
    # the source model, evaluated with the first run of the earlier output
    b=$(for f in "$SEED0_FROM"/eval-*-toxic.json; do jq -e '.baseline != null' "$f" > /dev/null && { echo "$f"; break; }; done)
    cp "$b" "$d/eval-baseline-toxic.json"; cp "${b%-toxic.json}-controls.json" "$d/eval-baseline-controls.json"
  fi
  echo "== $(date -u +%FT%TZ) seed $s"
  SPLIT_SEED="$s" SEED="$s" OUT="$d" RESULTS="$d/results" RUNS="$RUNS" "$REPO/scripts/experiments/correction.sh"
done

# one JSON line per (seed, run, count) with that seed's set means
summ() {
  local s="$1" name="$2" t="$3" c="$4" which="$5"
  jq -c -s -L "$REPO/scripts/experiments" --argjson seed "$s" --arg run "$name" --arg which "$which" \
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
    else [$t.models, $c.models] | transpose[] | m(.[0]; .[1]) end' "$t" "$c"
}

rows="$BASE/rows.jsonl"; : > "$rows.tmp"
for s in $SEEDS; do
  d="$BASE/seed-$s"
  b=$(for f in "$d"/eval-*-toxic.json; do [ -s "$f" ] && jq -e '.baseline != null' "$f" > /dev/null && { echo "$f"; break; }; done || true)
  [ -n "$b" ] && [ -s "${b%-toxic.json}-controls.json" ] && summ "$s" baseline "$b" "${b%-toxic.json}-controls.json" baseline >> "$rows.tmp"
  while IFS=';' read -r name _; do
    [ -n "$name" ] || continue
    t="$d/eval-$name-toxic.json"; c="$d/eval-$name-controls.json"
    [ -s "$t" ] && [ -s "$c" ] && summ "$s" "$name" "$t" "$c" run >> "$rows.tmp"
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
  echo "evaluation prompts), random-selection seed s and sampling seed s. Seeds: $SEEDS.$([ -n "$SEED0_FROM" ] && echo " Seed 0 is the run above (its \`wf-\` rows and baseline).")"
  echo "Each cell: mean ± SEM **over seeds** of the per-seed set means (n = number of seeds; the prompt-level SEMs are in the"
  echo "per-seed rows of \`docs/results/correction/seeds.json\`). Δ = run − the same seed's baseline, paired, then averaged."
  echo "All runs remove 1,000 weights of the MLP input projections (gate_proj, up_proj)."
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
    "- \(.[0].run) \(.[0].count): " + (map("seed \(.seed): \(.held_emt * 1000 | round / 1000) / \(.held_gtox * 1000 | round / 1000), \(.ppl * 100 | round / 100)") | join("; "))' "$rows"
} > "$RESULTS/correction_seeds.md.tmp"
mv "$RESULTS/correction_seeds.md.tmp" "$RESULTS/correction_seeds.md"
echo "== $(date -u +%T) done: $RESULTS/correction_seeds.md"
