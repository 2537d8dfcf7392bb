#!/usr/bin/env bash
# Bit-identity check for refactors that must not change numbers (issue 11).
#
# Runs `attribute` (lrp, gradient, --abs-per-token, cp-lrp), `prune` (on-the-fly lrp and from a score file),
# `quantize` (all Q8_0), `graph-attribute --top` and greedy `generate` on the tiny HF fixtures (Llama with biases,
# OPT), on stories260K (llama2.c .bin and its HF copy) and on SmolLM2-135M (GGUF, one short prompt; four IOI
# prompts), and hashes every output file.
#
#   scripts/check_bitidentical.sh [BINARY] [--record]
#
# BINARY defaults to .build/release/workbench. With --record the hashes are written to
# docs/results/bitidentical/sha256.txt; without it they are compared with that list and the script exits 1 on
# any difference. The prompt files it uses are committed next to the list (they hold token ids, so the tiny
# fixtures need no tokenizer).
set -euo pipefail
cd "$(dirname "$0")/.."
BIN=.build/release/workbench
RECORD=0
for a in "$@"; do
  case "$a" in
    --record) RECORD=1 ;;
    *) BIN="$a" ;;
  esac
done
ASSETS=${WORKBENCH_ASSETS:-/work/shared/assets}
DATA=docs/results/bitidentical
LIST=$DATA/sha256.txt
OUT=$(mktemp -d)
trap 'rm -rf "$OUT"' EXIT

TINY_LLAMA=Tests/Fixtures/tiny-llama-bias
TINY_OPT=Tests/Fixtures/tiny-opt
S_BIN=$ASSETS/stories260K/stories260K.bin
S_HF=$ASSETS/stories260K/hf
SMOL=models/SmolLM2-135M-Instruct.Q4_1.gguf

run() { "$BIN" "$@" >/dev/null 2>&1 || { echo "failed: $*" >&2; "$BIN" "$@" >/dev/null; exit 1; }; }
attr() { # name model prompts [extra args]
  local name=$1 model=$2 prompts=$3; shift 3
  run attribute --model "$model" --prompts "$prompts" --out "$OUT/$name.safetensors" --quiet "$@"
}

for m in lrp gradient; do
  attr tiny_llama_$m $TINY_LLAMA $DATA/tiny_ids.jsonl --method $m
  attr tiny_opt_$m $TINY_OPT $DATA/tiny_ids.jsonl --method $m
  attr stories_bin_$m "$S_BIN" $DATA/stories.txt --method $m
  attr stories_hf_$m "$S_HF" $DATA/stories.txt --method $m
  attr tiny_llama_${m}_abs $TINY_LLAMA $DATA/tiny_ids.jsonl --method $m --abs-per-token
  attr tiny_opt_${m}_abs $TINY_OPT $DATA/tiny_ids.jsonl --method $m --abs-per-token
  attr stories_bin_${m}_abs "$S_BIN" $DATA/stories.txt --method $m --abs-per-token
done
attr tiny_opt_cplrp_eps $TINY_OPT $DATA/tiny_ids.jsonl --rule cp-lrp --epsilon 0.01 --seed-value one
attr tiny_llama_nexttoken $TINY_LLAMA $DATA/tiny_ids.jsonl --target next-token --abs-per-sample
run attribute --model "$S_BIN" --text $DATA/stories.txt --seqlen 16 --samples 4 --seed 3 --out "$OUT/stories_bin_corpus.safetensors" --quiet
# Recompute path: a tiny memory budget forces the pass to recompute lower blocks.
attr stories_bin_recompute "$S_BIN" $DATA/stories.txt --memory-budget-mb 1
if [ -f "$SMOL" ]; then
  attr smol_lrp "$SMOL" $DATA/smol.txt --method lrp --abs-per-token
fi

# Pruned checkpoints: on the fly and from a score file.
# (prune writes tokenizer files, so the tokenizer-less tiny fixtures cannot be pruned.)
run prune --model "$S_BIN" --method lrp --prompts $DATA/stories.txt --scheme row --sparsity 0.5 --out "$OUT/prune_stories_bin_lrp"
run prune --model "$S_BIN" --method gradient --aggregation signed --prompts $DATA/stories.txt --scheme neurons --sparsity 0.25 --out "$OUT/prune_stories_bin_grad"
run prune --model "$S_BIN" --scores "$OUT/stories_bin_lrp_abs.safetensors" --scheme global --sparsity 0.3 --out "$OUT/prune_stories_bin"
run prune --model "$S_HF" --method lrp --prompts $DATA/stories.txt --scheme heads --count 3 --format sparse-bitmask --out "$OUT/prune_stories_hf"

# Q8_0 quantisation (ggml's plain Q8_0 scales since a118e1b), every 2-D weight Q8_0.
if [ -f "$SMOL" ]; then
  run quantize --model "$SMOL" --importance plain --types q8_0 --bits-per-weight 8.5 --out "$OUT/quant_smol_q8_0.gguf"
fi

# Component graphs with --top: EAP-IG graph.json and graph.compact.json (graph.html is not hashed: its
# provenance shows the run time, which graph.json's hash leaves out, see below).
if [ -f "$SMOL" ]; then
  run graph-attribute --model "$SMOL" --prompts $DATA/ioi_smol.jsonl --method eap --top 10 --out "$OUT/graph_smol_eap" --quiet
fi
run graph-attribute --model "$S_HF" --prompts $DATA/ioi_stories.jsonl --method lrp --top 2% --out "$OUT/graph_stories_lrp" --quiet

# Greedy text from each family and format (forward path).
"$BIN" generate --model "$S_BIN" --prompt "Once upon a time" --max-new-tokens 24 > "$OUT/gen_stories_bin.txt" 2>/dev/null
"$BIN" generate --model "$S_HF" --prompt "Once upon a time" --max-new-tokens 24 > "$OUT/gen_stories_hf.txt" 2>/dev/null
if [ -f "$SMOL" ]; then
  "$BIN" generate --model "$SMOL" --prompt "The capital of France is" --max-new-tokens 16 > "$OUT/gen_smol.txt" 2>/dev/null
fi

( cd "$OUT" && find . -type f ! -name pruning.json ! -name 'graph*' | LC_ALL=C sort | xargs sha256sum ) > "$OUT.list"
# pruning.json records absolute paths and a timestamp; hash it without those lines.
for f in $(cd "$OUT" && find . -name pruning.json | LC_ALL=C sort); do
  printf '%s  %s (without paths, timestamp)\n' "$(grep -v '"path"\|"source" : "\\/\|"timestamp"' "$OUT/$f" | sha256sum | cut -d' ' -f1)" "$f" >> "$OUT.list"
done
# graph.json / graph.compact.json end with provenance lines, one key each: hash them without the run time and the
# model and task paths (their sha256 lines stay).
for f in $(cd "$OUT" && find . -name 'graph*.json' | LC_ALL=C sort); do
  printf '%s  %s (without paths, seconds)\n' "$(grep -v '^"workbench_seconds"\|^"workbench_model"\|^"workbench_task"' "$OUT/$f" | sha256sum | cut -d' ' -f1)" "$f" >> "$OUT.list"
done
if [ $RECORD = 1 ]; then
  mv "$OUT.list" "$LIST"
  echo "recorded $(wc -l < "$LIST") hashes in $LIST"
else
  if diff "$LIST" "$OUT.list"; then
    echo "bit-identical: $(wc -l < "$LIST") files match"
    rm -f "$OUT.list"
  else
    echo "DIFFERENT (see above)"; rm -f "$OUT.list"; exit 1
  fi
fi
