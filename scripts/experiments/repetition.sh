#!/usr/bin/env bash
# Repetition correction on reference AND held-out openers (issue 14, SparC³ §4.3), with general C4 behaviour and a
# perplexity guardrail, over several seeds, at the settings that work for toxicity (docs/results/correction.md):
# contrastive LRP with |R| per token, on the MLP input projections (gate_proj, up_proj: SparC³'s fc1) for weights and
# on whole MLP neurons, against contrastive Wanda, random and the unpruned model.
#
#   1. `workbench select` the openers of prompts/repetition_openers.txt whose greedy 50-token continuation loops
#      (RUR < RUR_CUT; SmolLM2's ordinary C4 prompts already give ≈ 0.41). Once, seed-independent.
#   2. Per seed s of SEEDS (OUT/seed-s): `workbench split --seed s` into reference/held-out; openers.txt = the first
#      N_UNDESIRED reference openers (the ones scored) + the first N_EVAL held-out openers.
#   3. `workbench correct` per run of RUNS (attribution once, a --count sweep): general = the first N_GENERAL C4 prompts
#      (next tokens), undesired = the first N_UNDESIRED reference openers (the model's own greedy 50-token
#      continuation); random selection seed s.
#   4. `workbench evaluate --sweep --samples 0` (greedy: repetition needs no samples) on openers.txt with the WikiText-2
#      guardrail, and on N_C4 C4 prompts not used for scoring (general behaviour must not change). The source model is
#      evaluated once per seed, with the first run.
#   5. docs/results/repetition.md (+ repetition/summary.json and the last seed's per-run reports): per (run, count) the
#      per-seed set means and their mean ± SEM over seeds; hand-written findings from docs/results/repetition.findings.md.
#
# Resumable: a step whose output exists is skipped, and the report is rebuilt from whatever is there. Checkpoints are
# deleted after their evaluations unless KEEP=1.
# Knobs (environment): MODEL WORKBENCH_BIN WORKBENCH_ASSETS SEEDS="0 1 2" RUNS (name;method;aggregation;granularity;
#   layers;counts) WEIGHT_COUNTS=1000,7000,20000 NEURON_COUNTS=10,100 RUR_CUT=0.3 N_GENERAL=32 N_UNDESIRED=24
#   N_EVAL=24 N_C4=24 PPL_WINDOWS=5 PPL_SEQLEN=512 OUT=out/experiments/repetition RESULTS=docs/results KEEP=0
# Run:  mkdir -p out/experiments/repetition
#       nohup nice -n 10 scripts/experiments/repetition.sh > out/experiments/repetition/log.txt 2>&1 &
set -euo pipefail

main() {
source "$(dirname "${BASH_SOURCE[0]}")/common.sh"
exp_env
SEEDS="${SEEDS:-0 1 2}"; RUR_CUT="${RUR_CUT:-0.3}"
WEIGHT_COUNTS="${WEIGHT_COUNTS:-1000,7000,20000}"; NEURON_COUNTS="${NEURON_COUNTS:-10,100}"
N_GENERAL="${N_GENERAL:-32}"; N_UNDESIRED="${N_UNDESIRED:-24}"; N_EVAL="${N_EVAL:-24}"; N_C4="${N_C4:-24}"
PPL_WINDOWS="${PPL_WINDOWS:-5}"; PPL_SEQLEN="${PPL_SEQLEN:-512}"
OUT="${OUT:-$REPO/out/experiments/repetition}"; RESULTS="${RESULTS:-$REPO/docs/results}"; KEEP="${KEEP:-0}"
OPENERS="$REPO/prompts/repetition_openers.txt"
GENERAL="$WORKBENCH_ASSETS/eval/toxicity/general_prompts.jsonl"
FC1='mlp\.(gate|up)_proj'   # the MLP input projections: Llama's counterpart of OPT's fc1, where SparC³ prunes
# name;method;aggregation;granularity;layers;counts  (most informative first: a partial run still answers)
RUNS="${RUNS:-
w-lrp-abs-fc1;lrp;abs-per-token;weights;$FC1;$WEIGHT_COUNTS
w-wanda-fc1;wanda;;weights;$FC1;$WEIGHT_COUNTS
w-random-fc1;random;;weights;$FC1;$WEIGHT_COUNTS
n-lrp-abs;lrp;abs-per-token;neurons;;$NEURON_COUNTS
n-wanda;wanda;;neurons;;$NEURON_COUNTS
n-random;random;;neurons;;$NEURON_COUNTS
}"
mkdir -p "$OUT" "$RESULTS/repetition"
echo "== $(date -u +%FT%TZ) repetition experiment: $MODEL, seeds [$SEEDS]"

# 1. select (seed-independent); C4 evaluation prompts = the general file's lines after the ones used for scoring
if [ ! -s "$OUT/selected.txt" ]; then
  "$WB" select --model "$MODEL" --prompts "$OPENERS" --metric rur --below "$RUR_CUT" --out "$OUT/selected.txt" \
    --values "$OUT/select-values.jsonl" --quiet | tee "$OUT/select.txt"
fi
if [ ! -s "$OUT/c4.jsonl" ]; then
  sed -n "$((N_GENERAL + 1)),$((N_GENERAL + N_C4))p" "$GENERAL" > "$OUT/c4.jsonl.tmp"
  mv "$OUT/c4.jsonl.tmp" "$OUT/c4.jsonl"
fi

for s in $SEEDS; do
  local d="$OUT/seed-$s"; mkdir -p "$d"
  # 2. split
  if [ ! -s "$d/heldout.txt" ]; then
    "$WB" split --prompts "$OUT/selected.txt" --reference "$d/reference.txt" --heldout "$d/heldout.txt" --seed "$s"
  fi
  if [ ! -s "$d/openers.txt" ]; then
    { sed -n "1,${N_UNDESIRED}p" "$d/reference.txt"; sed -n "1,${N_EVAL}p" "$d/heldout.txt"; } > "$d/openers.txt.tmp"
    mv "$d/openers.txt.tmp" "$d/openers.txt"
  fi
  local nref nheld first=1
  nref=$(sed -n "1,${N_UNDESIRED}p" "$d/reference.txt" | wc -l); nheld=$(sed -n "1,${N_EVAL}p" "$d/heldout.txt" | wc -l)
  while IFS=';' read -r name method agg gran layers counts; do
    [ -n "$name" ] || continue
    local nb=(); [ "$first" = 1 ] || nb=(--no-baseline)
    first=0
    if [ ! -s "$d/eval-$name-c4.json" ]; then
      if [ ! -s "$d/$name/correction.json" ]; then
        local extra=(); [ -n "$agg" ] && extra+=(--aggregation "$agg"); [ -n "$layers" ] && extra+=(--layers "$layers")
        [ "$method" = random ] && extra+=(--seed "$s")
        echo "== $(date -u +%T) seed $s: correct $name"
        "$WB" correct --model "$MODEL" --general "$GENERAL" --general-samples "$N_GENERAL" \
          --undesired "$d/reference.txt" --undesired-samples "$N_UNDESIRED" --method "$method" --granularity "$gran" \
          --count "$counts" --out "$d/$name" --force --quiet "${extra[@]}" 2>&1 | grep -v '^total' || true
        [ -s "$d/$name/correction.json" ] || { echo "correct $name (seed $s) failed" >&2; continue; }
      fi
      if [ ! -s "$d/eval-$name-openers.json" ]; then
        echo "== $(date -u +%T) seed $s: evaluate $name on the openers (reference + held-out)"
        "$WB" evaluate --sweep "$d/$name/correction.json" "${nb[@]}" --prompts "$d/openers.txt" \
          --split "rows 1-$nref: reference (scored); rows $((nref + 1))-$((nref + nheld)): held-out (split seed $s)" \
          --samples 0 --max-windows "$PPL_WINDOWS" --seqlen "$PPL_SEQLEN" --out "$d/eval-$name-openers.json" --quiet || true
      fi
      echo "== $(date -u +%T) seed $s: evaluate $name on C4"
      "$WB" evaluate --sweep "$d/$name/correction.json" "${nb[@]}" --prompts "$OUT/c4.jsonl" --split "C4 prompts not scored" \
        --samples 0 --max-windows 0 --out "$d/eval-$name-c4.json" --quiet || true
    fi
    [ -s "$d/$name/correction.json" ] && cp "$d/$name/correction.json" "$d/$name.correction.json"
    if [ "$KEEP" != 1 ] && [ -s "$d/eval-$name-c4.json" ]; then rm -rf "$d/$name"; fi
    report
  done <<< "$RUNS"
done
report
echo "== $(date -u +%T) done: $RESULTS/repetition.md"
}

# One JSON line per (seed, run, count) with that seed's set means; the table averages them over seeds.
report() {
  local rows="$OUT/rows.jsonl" s d
  : > "$rows.tmp"
  for s in $SEEDS; do
    d="$OUT/seed-$s"; [ -d "$d" ] || continue
    local nref; nref=$(sed -n "1,${N_UNDESIRED}p" "$d/reference.txt" 2>/dev/null | wc -l)
    while IFS=';' read -r name method agg gran layers counts; do
      [ -n "$name" ] || continue
      local o="$d/eval-$name-openers.json" c="$d/eval-$name-c4.json"
      [ -s "$o" ] && [ -s "$c" ] || continue
      jq -c -s -L "$REPO/scripts/experiments" --argjson seed "$s" --arg run "$name" --arg method "$method" \
        --arg agg "${agg:-–}" --arg gran "$gran" --argjson H "$nref" 'include "seedstats";
        def m(e; f): (e.prompts[0:$H]) as $r | (e.prompts[$H:]) as $h |
          {seed: $seed, count: (e.count // 0),
           ref_rur: mean_of($r | map(.rur)), ref_rep4: mean_of($r | map(.seq_rep_1_4[3])),
           held_rur: mean_of($h | map(.rur)), held_rep4: mean_of($h | map(.seq_rep_1_4[3])),
           held_rur_sem: sem_of($h | map(.rur)),
           c4_rur: mean_of(f.prompts | map(.rur)), c4_rep4: mean_of(f.prompts | map(.seq_rep_1_4[3])),
           ppl: e.perplexity.perplexity};
        .[0] as $o | .[1] as $c |
        (if $o.baseline != null and $c.baseline != null then [m($o.baseline; $c.baseline) + {run: "none (baseline)", method: "–", aggregation: "–", granularity: "–"}] else [] end)[],
        ([$o.models, $c.models] | transpose[] | m(.[0]; .[1]) + {run: $run, method: $method, aggregation: $agg, granularity: $gran})' "$o" "$c" >> "$rows.tmp"
      # the pages of the first seed only, so the folder is one coherent run
      if [ "$s" = "${SEEDS%% *}" ]; then cp "$o" "$c" "${o%.json}.html" "${c%.json}.html" "$RESULTS/repetition/"; fi
    done <<< "$RUNS"
  done
  mv "$rows.tmp" "$rows"
  [ -s "$rows" ] || return 0
  jq -s '{generated_by: "scripts/experiments/repetition.sh", rows: .}' "$rows" > "$RESULTS/repetition/summary.json.tmp"
  mv "$RESULTS/repetition/summary.json.tmp" "$RESULTS/repetition/summary.json"
  {
  echo "# Repetition correction on reference and held-out openers (SmolLM2-135M-Instruct)"
  echo
  echo "Generated by \`scripts/experiments/repetition.sh\` on $(date -u +%F) (the findings below the table are written by hand)."
  echo "Model \`$MODEL\` (Q4_1 GGUF, computed in F32)."
  echo
  echo "- **Undesired set.** \`prompts/repetition_openers.txt\` (98 openers written for this project, not a published set)"
  echo "  filtered by \`workbench select --metric rur --below $RUR_CUT\` on the greedy 50-token continuation:"
  echo "  $(head -1 "$OUT/select.txt" | sed 's/ →.*//'); $(sed -n 2p "$OUT/select.txt")."
  echo "- **Seeds.** Seed s = \`workbench split --seed s\` of the kept openers (new scoring AND evaluation openers) and the"
  echo "  random selection's seed. Seeds run: $(jq -r -s 'map(.seed) | unique | map(tostring) | join(", ")' "$rows")."
  echo "- **Scores.** General = the first $N_GENERAL C4 prompts of \`general_prompts.jsonl\` (next tokens); undesired = the first"
  echo "  $N_UNDESIRED **reference** openers (the model's own greedy 50-token continuation). Components removed by the most"
  echo "  negative R̄_general − R̄_undesired. \`w-\` = weights of the MLP input projections (gate_proj, up_proj; SparC³'s fc1),"
  echo "  one ranking over them; \`n-\` = whole MLP neurons. LRP uses |R| per token (\`--aggregation abs-per-token\`): the"
  echo "  published signed score breaks this model (\`docs/results/correction.md\`)."
  echo "- **Evaluation** (greedy, no sampling): those $N_UNDESIRED **reference** openers (ref), the first $N_EVAL **held-out** openers"
  echo "  (held) and $N_C4 C4 prompts not used for scoring (C4: general behaviour must not change). RUR = unique/total tokens of"
  echo "  the greedy 50 tokens (SparC³ Eq. 11, ↑ = less repetition); rep-4 = seq-rep-4 (↓). WikiText-2 perplexity on"
  echo "  $PPL_WINDOWS windows of $PPL_SEQLEN tokens."
  echo "- **Statistics.** Each cell: mean ± SEM **over seeds** of the per-seed set means (\`seeds\` = n). With one seed, the"
  echo "  cell is that seed's mean and the held-out RUR's ± is over prompts (marked ‡). Per-seed values:"
  echo "  \`docs/results/repetition/summary.json\`. Machine: 2 shared, loaded cores."
  echo
  echo "| run | method | count | seeds | ref RUR | ref rep-4 | held RUR | held rep-4 | C4 RUR | C4 rep-4 | WikiText ppl |"
  echo "|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|"
  jq -r -s -L "$REPO/scripts/experiments" 'include "seedstats";
    def p(x): x | if . == null then "–" elif . > 1e4 then tostring | .[0:8] else . * 100 | round / 100 | tostring end;
    group_by([.run != "none (baseline)", .granularity, .count, .run]) | .[] | . as $g |
    "| \($g[0].run) | \($g[0].method) | \($g[0].count) | \($g | length) | \(pm($g | map(.ref_rur))) | \(pm($g | map(.ref_rep4))) | \(if ($g | length) == 1 and $g[0].held_rur_sem != null then "\($g[0].held_rur * 1000 | round / 1000) ± \($g[0].held_rur_sem * 1000 | round / 1000) ‡" else pm($g | map(.held_rur)) end) | \(pm($g | map(.held_rep4))) | \(pm($g | map(.c4_rur))) | \(pm($g | map(.c4_rep4))) | \(if ($g | length) == 1 then p($g[0].ppl) else pm($g | map(.ppl); 2) end) |"' "$rows"
  echo
  echo "Per-run reports of seed ${SEEDS%% *} (JSON + HTML, continuations side by side): \`docs/results/repetition/eval-*\`."
  if [ -s "$RESULTS/repetition.findings.md" ]; then echo; cat "$RESULTS/repetition.findings.md"; fi
  } > "$RESULTS/repetition.md.tmp"
  mv "$RESULTS/repetition.md.tmp" "$RESULTS/repetition.md"
}

main "$@"
