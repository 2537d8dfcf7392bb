#!/usr/bin/env bash
# Independent check of `workbench quantize` and `workbench imatrix` output with llama.cpp itself (issue 16: "a GGUF v3
# file that llama.cpp can run"; "export relevance as an importance matrix so llama.cpp users quantise with it").
# Not needed by the product or the tests; results are recorded in docs/results/quantize.md. Recipe in tools/README.md.
#
#   tools/llamacpp_check.sh LLAMA_BIN_DIR [OUT_DIR]
#
# LLAMA_BIN_DIR holds llama-perplexity, llama-tokenize and llama-quantize (built from llama.cpp, e.g. the copy vendored
# by the llama-cpp-python sdist; see tools/README.md). For each GGUF (the converter-written source as a control, and
# our quantize outputs):
#   1. it must load in llama.cpp;
#   2. tokenisation: llama-tokenize of the evaluation text must give exactly the ids our tokenizer gives;
#   3. perplexity: llama-perplexity (-c CTX --chunks CHUNKS; it scores the second half of each window and puts BOS first
#      when the vocabulary asks for it) against `workbench perplexity --protocol llamacpp` on the same windows; the
#      relative difference must be ≤ TOL.
# Then the imatrix: `workbench imatrix` of a score file, read by `llama-quantize --imatrix` (its log must report the
# entries loaded), the quantised model evaluated by llama-perplexity and compared with the same quantisation without it.
#
# The evaluation text is the first LINES lines of WikiText-2 test, prepared as `workbench perplexity` prepares it
# (each non-empty line + "\n", joined with "\n\n"), so both programs see the same string.
#
# Knobs: WORKBENCH_BIN=.build/release/workbench MODEL=models/SmolLM2-135M-Instruct.Q4_1.gguf LINES=100 CTX=512 CHUNKS=4
#        TOL=0.01 SCORES=<attribute output for the imatrix; default: LRP on 4 × 64 tokens of C4 computed here>
#        IMATRIX_TYPE=Q4_0 (llama-quantize target type for the imatrix check) THREADS=2
set -euo pipefail

LL="${1:?usage: tools/llamacpp_check.sh LLAMA_BIN_DIR [OUT_DIR]}"
OUT="${2:-out/llamacpp_check}"
REPO="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$REPO"
WB="${WORKBENCH_BIN:-$REPO/.build/release/workbench}"
MODEL="${MODEL:-models/SmolLM2-135M-Instruct.Q4_1.gguf}"
export WORKBENCH_ASSETS="${WORKBENCH_ASSETS:-$REPO/../shared/assets}"
LINES="${LINES:-100}"; CTX="${CTX:-512}"; CHUNKS="${CHUNKS:-4}"; TOL="${TOL:-0.01}"; THREADS="${THREADS:-2}"
IMATRIX_TYPE="${IMATRIX_TYPE:-Q4_0}"
mkdir -p "$OUT"
fail=0

echo "llama.cpp: $("$LL/llama-perplexity" --version 2>&1 | grep -m1 version || echo unknown)"
echo "workbench: $(git -C "$REPO" rev-parse --short HEAD)"

# The evaluation text, raw (for workbench, which joins it) and joined (for llama.cpp).
RAW="$OUT/wiki.head.raw"; JOINED="$OUT/wiki.head.joined.txt"
head -n "$LINES" "$WORKBENCH_ASSETS/eval/wikitext-2-raw/wiki.test.raw" > "$RAW"
awk 'BEGIN { n = 0 } { sub(/\r$/, ""); if ($0 == "") next; if (n++) printf "\n\n"; printf "%s\n", $0 }' "$RAW" > "$JOINED"

ours_ppl() {  # model → perplexity (llamacpp protocol) on the same windows
  "$WB" perplexity --model "$1" --text "$RAW" --seqlen "$CTX" --max-windows "$CHUNKS" --protocol llamacpp --json 2>/dev/null \
    | sed -n 's/.*"perplexity" *: *\([0-9.eE+-]*\).*/\1/p'
}
llama_ppl() {  # model → llama-perplexity's final estimate (log in $2). llama.cpp logs from a background thread, and on the
               # tiny model (it exits within milliseconds) the last lines, "Final estimate" included, were sometimes lost:
               # up to 3 attempts.
  local attempt v
  for attempt in 1 2 3; do
    "$LL/llama-perplexity" -m "$1" -f "$JOINED" -c "$CTX" -b "$CTX" --chunks "$CHUNKS" -t "$THREADS" > "$2" 2>&1 || { echo "FAIL: llama-perplexity did not run on $1 (see $2)" >&2; tail -5 "$2" >&2; return 1; }
    v=$(sed -n 's/.*Final estimate: PPL = \([0-9.]*\).*/\1/p' "$2")
    [ -n "$v" ] && { echo "$v"; return 0; }
  done
  echo "FAIL: no final estimate from llama-perplexity on $1 (see $2)" >&2; return 1
}
check_model() {  # name gguf
  local name="$1" g="$2"
  echo "== $name: $g ($(stat -c %s "$g") bytes)"
  # Tokenisation: every id of the evaluation text (llama-tokenize adds BOS only when the vocabulary asks for it;
  # workbench perplexity does the same, so both are compared as the tokenizer emits them).
  "$LL/llama-tokenize" -m "$g" -f "$JOINED" --ids --log-disable 2>/dev/null | tr -d '[],' | tr -s ' ' '\n' | sed '/^$/d' > "$OUT/$name.llama.ids"
  local text; text="$(cat "$JOINED"; printf .)"; text="${text%.}"   # keep the trailing newline $(…) would strip
  "$WB" tokenize --model "$g" --text "$text" 2>/dev/null | tr -s ' ' '\n' | sed '/^$/d' > "$OUT/$name.ours.ids"
  local nl no; nl=$(wc -l < "$OUT/$name.llama.ids"); no=$(wc -l < "$OUT/$name.ours.ids")
  if cmp -s "$OUT/$name.llama.ids" "$OUT/$name.ours.ids"; then
    echo "tokens: identical ($nl ids)"
  else
    echo "FAIL tokens: llama.cpp $nl ids, ours $no; first difference at line $(cmp "$OUT/$name.llama.ids" "$OUT/$name.ours.ids" | awk '{print $NF}')"; fail=1
  fi
  local pl po
  pl=$(llama_ppl "$g" "$OUT/$name.llama-perplexity.log") || { fail=1; return; }
  po=$(ours_ppl "$g")
  awk -v a="$pl" -v b="$po" -v t="$TOL" -v n="$name" 'BEGIN {
    d = (b - a) / a; if (d < 0) d = -d
    printf "perplexity (%s, ctx '"$CTX"', %d chunks, second half scored): llama.cpp %s, workbench %s, relative difference %.2e (tol %g): %s\n", n, '"$CHUNKS"', a, b, d, t, (d <= t ? "ok" : "FAIL")
    exit (d <= t ? 0 : 1) }' || fail=1
}

# 1. The converter-written source (control: how closely the two programs agree on a file llama.cpp's tools wrote).
check_model source "$MODEL"

# 2. Our quantize outputs: a relevance-free mixed allocation and the uniform types.
[ -f "$OUT/mixed-4.75.gguf" ] || "$WB" quantize --model "$MODEL" --importance magnitude --bits-per-weight 4.75 --out "$OUT/mixed-4.75.gguf" > "$OUT/mixed-4.75.txt"
check_model mixed-4.75 "$OUT/mixed-4.75.gguf"
[ -f "$OUT/q8_0.gguf" ] || "$WB" quantize --model "$MODEL" --types q8_0 --bits-per-weight 8.5 --out "$OUT/q8_0.gguf" > "$OUT/q8_0.txt"
check_model q8_0 "$OUT/q8_0.gguf"
[ -f "$OUT/f16.gguf" ] || "$WB" quantize --model "$MODEL" --types f16 --bits-per-weight 16 --plain-rounding --out "$OUT/f16.gguf" > "$OUT/f16.txt"
check_model f16 "$OUT/f16.gguf"

# 3. A tiny model from an HF directory (the other writer path: tokenizer keys built from tokenizer.json): the
#    tiny-llama-bias fixture (q/k/v/o and MLP biases, GQA, vocab 256) with a byte-level BPE tokenizer of its 256 byte
#    symbols and no merges, written here (GPT-2's byte → unicode table). Random weights: only the agreement matters.
TINY="$OUT/tiny-llama-bias-bpe"
if [ ! -f "$TINY/tokenizer.json" ]; then
  mkdir -p "$TINY"
  cp Tests/Fixtures/tiny-llama-bias/config.json Tests/Fixtures/tiny-llama-bias/model.safetensors "$TINY/"
  python3 - "$TINY" <<'PY'
import json, sys
bs = list(range(ord("!"), ord("~") + 1)) + list(range(ord("¡"), ord("¬") + 1)) + list(range(ord("®"), ord("ÿ") + 1))
cs = bs[:]
n = 0
for b in range(256):
    if b not in bs:
        bs.append(b); cs.append(256 + n); n += 1
sym = {b: chr(c) for b, c in zip(bs, cs)}
vocab = {sym[b]: b for b in range(256)}
bl = {"type": "ByteLevel", "add_prefix_space": False, "trim_offsets": True, "use_regex": True}
tok = {"version": "1.0", "truncation": None, "padding": None, "added_tokens": [], "normalizer": None, "pre_tokenizer": bl,
       "post_processor": bl, "decoder": bl,
       "model": {"type": "BPE", "dropout": None, "unk_token": None, "continuing_subword_prefix": None, "end_of_word_suffix": None,
                 "fuse_unk": False, "byte_fallback": False, "ignore_merges": False, "vocab": vocab, "merges": []}}
json.dump(tok, open(sys.argv[1] + "/tokenizer.json", "w"), ensure_ascii=False)
PY
fi
[ -f "$OUT/tiny-6.gguf" ] || "$WB" quantize --model "$TINY" --importance magnitude --bits-per-weight 6 --out "$OUT/tiny-6.gguf" > "$OUT/tiny-6.txt"
CTX_SAVED="$CTX"; CTX=64
check_model tiny-6 "$OUT/tiny-6.gguf"
CTX="$CTX_SAVED"

# 4. The imatrix: relevance → llama-quantize --imatrix, from our F16 file.
SCORES="${SCORES:-$OUT/lrp-c4-4-64.safetensors}"
if [ ! -f "$SCORES" ]; then
  "$WB" attribute --model "$MODEL" --text "$WORKBENCH_ASSETS/eval/c4/c4_pfdecoding_1480.jsonl" --seqlen 64 --samples 4 --seed 0 \
    --method lrp --abs-per-token --out "$SCORES" > /dev/null
fi
"$WB" imatrix --model "$MODEL" --scores "$SCORES" --out "$OUT/imatrix.gguf" > "$OUT/imatrix.txt"
echo "== imatrix: $OUT/imatrix.gguf from $SCORES"
"$LL/llama-quantize" --imatrix "$OUT/imatrix.gguf" "$OUT/f16.gguf" "$OUT/imatrix-$IMATRIX_TYPE.gguf" "$IMATRIX_TYPE" "$THREADS" > "$OUT/llama-quantize-imatrix.log" 2>&1 \
  || { echo "FAIL: llama-quantize --imatrix (see $OUT/llama-quantize-imatrix.log)"; tail -5 "$OUT/llama-quantize-imatrix.log"; fail=1; }
"$LL/llama-quantize" "$OUT/f16.gguf" "$OUT/plain-$IMATRIX_TYPE.gguf" "$IMATRIX_TYPE" "$THREADS" > "$OUT/llama-quantize-plain.log" 2>&1 \
  || { echo "FAIL: llama-quantize (see $OUT/llama-quantize-plain.log)"; fail=1; }
grep -E "load_imatrix|imatrix" "$OUT/llama-quantize-imatrix.log" | grep -v "^ *$" | head -4 || true
loaded=$(sed -n 's/.*loaded \([0-9]*\) importance matrix entries.*/\1/p' "$OUT/llama-quantize-imatrix.log" | head -1)
if [ -n "$loaded" ] && [ "$loaded" -gt 0 ]; then echo "imatrix: llama-quantize loaded $loaded entries"; else echo "FAIL: llama-quantize did not report loading the imatrix"; fail=1; fi
if cmp -s "$OUT/imatrix-$IMATRIX_TYPE.gguf" "$OUT/plain-$IMATRIX_TYPE.gguf"; then
  echo "FAIL: the imatrix did not change llama-quantize's output"; fail=1
else
  echo "imatrix changes the $IMATRIX_TYPE encoding: perplexity with $(llama_ppl "$OUT/imatrix-$IMATRIX_TYPE.gguf" "$OUT/imatrix-ppl.log"), without $(llama_ppl "$OUT/plain-$IMATRIX_TYPE.gguf" "$OUT/plain-ppl.log") (llama-perplexity, same windows)"
fi

[ "$fail" = 0 ] && echo "all checks passed" || { echo "SOME CHECKS FAILED"; exit 1; }
