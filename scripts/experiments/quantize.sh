#!/usr/bin/env bash
# Relevance-guided mixed precision on SmolLM2-135M: WikiText-2 perplexity of `workbench quantize` outputs at equal
# bits per weight, uniform vs importance-guided type allocation, with and without importance-weighted rounding and
# with and without `--prune-nonpositive` (docs/results/quantize.md).
#
#   The source is the Q4_1 GGUF (the only SmolLM2 checkpoint here), so Q4_1 re-encodes its decoder weights
#   losslessly (its token embedding is Q8_0). BUDGETS bits per weight over {q8_0, q4_1, q4_0}: between Q4_0 (4.5) and
#   Q4_1 (5.0) the budget decides which tensors keep Q4_1 and which drop to Q4_0; at 6.0 some go to Q8_0. Importance:
#   none (plain), |W| (magnitude), Wanda |W|·‖X‖ (`attribute --method wanda`), |R| from AttnLRP (`attribute --method lrp
#   --abs-per-token`), and signed AttnLRP (`attribute --method lrp`, the signed sum; |R| as importance) with and without
#   `--prune-nonpositive` (the seed paper's first step). Calibration: SAMPLES windows of SEQLEN_CAL tokens of the C4
#   validation sample, seed 0 — disjoint from the evaluation text. Perplexity: wanda protocol, first WINDOWS windows of
#   512 tokens of WikiText-2 test.
#
# Resumable: a configuration whose perplexity file exists is skipped (quantize writes atomically).
#
# Knobs (environment):
#   BUDGETS="4.75 5.0 6.0" WINDOWS=4 SAMPLES=16 SEQLEN_CAL=128
#   WORKBENCH_BIN=.build/release/workbench  MODEL=models/SmolLM2-135M-Instruct.Q4_1.gguf
#   WORKBENCH_ASSETS=../shared/assets  OUT=out/experiments/quantize  SCORES=out/experiments/scores  RESULTS=docs/results
#
#   mkdir -p out/experiments/quantize && nohup nice -n 10 scripts/experiments/quantize.sh > out/experiments/quantize/log.txt 2>&1 &
set -euo pipefail

main() {
REPO="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
cd "$REPO"
BUDGETS="${BUDGETS:-4.75 5.0 6.0}"; WINDOWS="${WINDOWS:-4}"; SAMPLES="${SAMPLES:-16}"; SEQLEN_CAL="${SEQLEN_CAL:-128}"
WORKBENCH_BIN="${WORKBENCH_BIN:-$REPO/.build/release/workbench}"
MODEL="${MODEL:-models/SmolLM2-135M-Instruct.Q4_1.gguf}"
export WORKBENCH_ASSETS="${WORKBENCH_ASSETS:-$REPO/../shared/assets}"
OUT="${OUT:-out/experiments/quantize}"
SCORES="${SCORES:-out/experiments/scores}"
RESULTS="${RESULTS:-docs/results}"
TEXT="$WORKBENCH_ASSETS/eval/wikitext-2-raw/wiki.test.raw"
C4="$WORKBENCH_ASSETS/eval/c4/c4_pfdecoding_1480.jsonl"
mkdir -p "$OUT" "$RESULTS" "$SCORES"
LRP="$SCORES/lrp-c4-$SAMPLES-$SEQLEN_CAL.safetensors"
LRPS="$SCORES/lrp-signed-c4-$SAMPLES-$SEQLEN_CAL.safetensors"
WANDA="$SCORES/wanda-c4-$SAMPLES-$SEQLEN_CAL.safetensors"
# A score file is computed just before the first configuration that needs it (--resume continues an interrupted one).
scores_for() {  # quantize arguments → computes the score file they name, if missing
  local spec f a
  for spec in "$LRP|--method lrp --abs-per-token" "$LRPS|--method lrp" "$WANDA|--method wanda"; do
    f="${spec%%|*}"; a="${spec#*|}"
    case " $1 " in *" $f "*) ;; *) continue;; esac
    [ -f "$f" ] && continue
    echo "== attribute $a ($(date -u +%H:%M:%S))"
    local resume=(); [ -f "$f.partial" ] && resume=(--resume)
    # shellcheck disable=SC2086
    "$WORKBENCH_BIN" attribute --model "$MODEL" --text "$C4" --seqlen "$SEQLEN_CAL" --samples "$SAMPLES" --seed 0 $a --out "$f" "${resume[@]}"
  done
}

# name | quantize arguments ("source" = the input model itself). Ordered so that the configurations that need no
# score file come first, then LRP |R|, Wanda, signed LRP (each score file costs minutes on a loaded machine).
CONFIGS=(
  "source|"
  "uniform-q8_0-plain|--types q8_0 --bits-per-weight 8.5 --plain-rounding"
  "uniform-q4_1-plain|--types q4_1 --bits-per-weight 5 --plain-rounding"
  "uniform-q4_0-plain|--types q4_0 --bits-per-weight 4.5 --plain-rounding"
  "uniform-q4_0-magnitude-rounding|--types q4_0 --bits-per-weight 4.5 --importance magnitude"
)
for b in $BUDGETS; do
  CONFIGS+=("mixed-$b-plain|--types q8_0,q4_1,q4_0 --bits-per-weight $b --plain-rounding"
            "mixed-$b-magnitude|--types q8_0,q4_1,q4_0 --bits-per-weight $b --importance magnitude")
done
CONFIGS+=("uniform-q4_0-lrp-rounding|--types q4_0 --bits-per-weight 4.5 --scores $LRP")
for b in $BUDGETS; do CONFIGS+=("mixed-$b-lrp|--types q8_0,q4_1,q4_0 --bits-per-weight $b --scores $LRP"); done
CONFIGS+=("mixed-4.75-lrp-plain-rounding|--types q8_0,q4_1,q4_0 --bits-per-weight 4.75 --scores $LRP --plain-rounding"
          "uniform-q4_0-wanda-rounding|--types q4_0 --bits-per-weight 4.5 --scores $WANDA")
for b in $BUDGETS; do CONFIGS+=("mixed-$b-wanda|--types q8_0,q4_1,q4_0 --bits-per-weight $b --scores $WANDA"); done
CONFIGS+=("uniform-q4_0-lrp-signed-rounding|--types q4_0 --bits-per-weight 4.5 --scores $LRPS"
          "uniform-q4_0-lrp-signed-prune|--types q4_0 --bits-per-weight 4.5 --scores $LRPS --prune-nonpositive"
          "mixed-4.75-lrp-signed|--types q8_0,q4_1,q4_0 --bits-per-weight 4.75 --scores $LRPS"
          "mixed-4.75-lrp-signed-prune|--types q8_0,q4_1,q4_0 --bits-per-weight 4.75 --scores $LRPS --prune-nonpositive")
for c in "${CONFIGS[@]}"; do
  name="${c%%|*}"; args="${c#*|}"
  [ -f "$OUT/$name.ppl" ] && { echo "skip $name (done)"; continue; }
  echo "== $name ($(date -u +%H:%M:%S))"
  model="$MODEL"
  scores_for "$args"
  if [ "$name" != source ]; then
    model="$OUT/$name.gguf"
    # shellcheck disable=SC2086
    [ -f "$model" ] || /usr/bin/time -f "%e %U %S" -o "$OUT/$name.time" "$WORKBENCH_BIN" quantize --model "$MODEL" $args --out "$model" > "$OUT/$name.quantize"
    cat "$OUT/$name.quantize"
  fi
  "$WORKBENCH_BIN" perplexity --model "$model" --text "$TEXT" --seqlen 512 --max-windows "$WINDOWS" > "$OUT/$name.ppl.tmp"
  mv "$OUT/$name.ppl.tmp" "$OUT/$name.ppl"
  tail -1 "$OUT/$name.ppl"
  [ "$name" = source ] || rm -f "$model"      # 100 MB each; the table keeps what matters
done

# The generated part is rewritten; whatever follows the marker line (hand-written reading, the llama.cpp check) is kept.
MARK="<!-- hand-written below: kept by quantize.sh -->"
tail_text=""
[ -f "$RESULTS/quantize.md" ] && grep -qF "$MARK" "$RESULTS/quantize.md" && tail_text="$(sed -n "/$MARK/,\$p" "$RESULTS/quantize.md")"
{ report; echo; if [ -n "$tail_text" ]; then echo "$tail_text"; else echo "$MARK"; fi; } > "$RESULTS/quantize.md.tmp"
mv "$RESULTS/quantize.md.tmp" "$RESULTS/quantize.md"
echo "wrote $RESULTS/quantize.md"
}

report() {
  echo "# Relevance-guided mixed precision (SmolLM2-135M, GGUF)"
  echo
  echo "Generated by \`scripts/experiments/quantize.sh\` on $(date -u +%Y-%m-%d) (reduced run: see Limits)."
  echo
  echo "- **Model**: \`$MODEL\` (SmolLM2-135M-Instruct, Q4_1 GGUF with a Q8_0 token embedding — the only SmolLM2"
  echo "  checkpoint here, so it is the source: Q4_1 re-encodes its decoder weights losslessly, and the budgets decide which"
  echo "  tensors keep Q4_1, which drop to Q4_0 and, at 6.0, which go to Q8_0)."
  echo "- **Quantize**: \`workbench quantize --types q8_0,q4_1,q4_0\` (mixed) or one type (uniform), one ggml type per 2-D"
  echo "  weight (embedding included; norms stay F32 and are not counted), greedy allocation of the importance-weighted squared"
  echo "  error under the budget; bits are exact storage bits (Q4_0 4.5, Q4_1 5.0, Q8_0 8.5). Importance-weighted block"
  echo "  scales (llama.cpp imatrix-style search) unless the name says plain-rounding; \"plain\" importance = 1 per weight."
  echo "- **Importance**: magnitude |W|; Wanda |W|·‖X‖ (\`attribute --method wanda\`); LRP |R| per token"
  echo "  (\`attribute --method lrp --abs-per-token\`); LRP signed (\`attribute --method lrp\`, the signed sum over tokens; |R|"
  echo "  is the importance, and \`-prune\` first zeroes every weight whose signed R ≤ 0). Scores on $SAMPLES windows of"
  echo "  $SEQLEN_CAL tokens of the C4 validation sample (\`c4_pfdecoding_1480.jsonl\`), seed 0: disjoint from the evaluation text."
  echo "- **Metric / split**: perplexity (wanda protocol) on the first $WINDOWS windows of 512 tokens of WikiText-2 *test*; one"
  echo "  deterministic evaluation per configuration (no seeds: quantisation and evaluation are deterministic), so there is no SEM."
  echo
  echo "| configuration | achieved bpw | tensors by type | pruned | file bytes | perplexity | quantize s (wall / CPU) |"
  echo "|---|---:|---|---:|---:|---:|---:|"
  for c in "${CONFIGS[@]}"; do
    name="${c%%|*}"
    [ -f "$OUT/$name.ppl" ] || continue
    ppl=$(awk '/^perplexity:/ {print $2}' "$OUT/$name.ppl")
    if [ "$name" = source ]; then
      echo "| source (Q4_1 file; token embedding Q8_0) | 5.7368 | Q4_1 210, Q8_0 1 | – | $(stat -c %s "$MODEL") | $ppl | – |"
    else
      bpw=$(awk '/achieved/ {for (i = 1; i <= NF; i++) if ($i == "achieved") print $(i + 1)}' "$OUT/$name.quantize")
      types=$(awk -F': ' '/^tensors by type/ {print $2}' "$OUT/$name.quantize")
      bytes=$(awk '/^wrote/ {gsub(/[()]/, "", $3); print $3}' "$OUT/$name.quantize")
      pruned=$(awk '/^pruned/ {gsub(/[(]/, "", $9); print $9 " %"}' "$OUT/$name.quantize")
      t="–"; [ -f "$OUT/$name.time" ] && t=$(awk '{printf "%.1f / %.1f", $1, $2 + $3}' "$OUT/$name.time")
      echo "| $name | $bpw | $types | ${pruned:-–} | $bytes | $ppl | $t |"
    fi
  done
  echo
  echo "## Limits"
  echo
  echo "- Budgets $BUDGETS bpw (and the uniform types), $WINDOWS evaluation windows, one calibration set: no spread."
  echo "- The source is already Q4_1, so this measures re-quantisation of a Q4_1 model, not quantisation from F16."
  echo "- The machine was shared and loaded; quantize seconds are under that load, not meaningful as absolutes."
}

main "$@"
