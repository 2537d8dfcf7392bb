#!/usr/bin/env bash
# The full-protocol SparC³ Table-1 run on SmolLM2-135M (issue 17, "The full-protocol table"), as resumable shards.
#
#   calibration: 128 C4 windows × 2048 tokens, seed 0 (one seed: a calibration takes hours here)
#   methods:     magnitude, Wanda, gradient, LRP signed (SparC³ Eq. 1) and LRP |R| per token (--abs-per-token)
#   schemes:     50% row-wise and 2:4
#   evaluation:  WikiText-2 perplexity over ALL windows at seqlen 2048
#   then (TREND=1, after the table): LRP with 1024 samples, 50% row and 2:4
#
# It is scripts/experiments/compression.sh with those settings: every score file is computed as SHARDS parts
# (`attribute --shard K/SHARDS`, each resumable from its checkpoint) and merged; a step whose output exists is
# skipped, so rerunning this script continues where it stopped (also in a later session). Only the per-step
# JSON under $OUT/results is needed for the report; parts and pruned checkpoints are deleted when used.
#
# The binary is copied into $OUT/bin once, so rebuilding the repo mid-run cannot change it; delete $OUT/bin to
# switch binaries (the results already in $OUT stay, so do that only for a binary that computes the same).
#
#   nohup nice -n 15 scripts/experiments/table1.sh > out/experiments/table1/log.txt 2>&1 &
#
# Knobs (environment): OUT=out/experiments/table1 SHARDS=8 TREND=1 NICE= WORKBENCH_BIN=.build/release/workbench
set -euo pipefail
main() {
source "$(dirname "${BASH_SOURCE[0]}")/common.sh"
exp_env
OUT="${OUT:-out/experiments/table1}"
SHARDS="${SHARDS:-8}"
TREND="${TREND:-1}"
SRC_BIN="$WORKBENCH_BIN"
mkdir -p "$OUT/bin"
if [[ ! -x "$OUT/bin/workbench" ]]; then
    [[ -x "$SRC_BIN" ]] || { echo "table1.sh: no binary $SRC_BIN (swift build -c release)" >&2; exit 1; }
    cp "$SRC_BIN" "$OUT/bin/workbench.tmp" && mv "$OUT/bin/workbench.tmp" "$OUT/bin/workbench"
    git -C "$(dirname "$SRC_BIN")/../.." rev-parse HEAD > "$OUT/bin/git_head" 2>/dev/null || echo unknown > "$OUT/bin/git_head"
fi
export WORKBENCH_BIN="$REPO/$OUT/bin/workbench"
[[ "$OUT" == /* ]] && export WORKBENCH_BIN="$OUT/bin/workbench"
common=(SEQLEN=2048 SAMPLES=128 SEEDS=0 EVAL_SEQLEN=2048 EVAL_WINDOWS= SPARSITIES= SWEEP_SEED=0
        METHODS="magnitude wanda lrp-apt lrp gradient" PROBES= PROBE_SEEDS= OUT="$OUT" SHARDS="$SHARDS"
        CHECKPOINT_EVERY=4 REPORT=0 KEEP=0)
# 1. the table; LRP |R| per token ("lrp-apt", the README's recommendation) right after Wanda
env "${common[@]}" EXTRA_LRP_SAMPLES= "$REPO/scripts/experiments/compression.sh"
# 2. the trend
if [[ "$TREND" == 1 ]]; then
    env "${common[@]}" EXTRA_LRP_SAMPLES=1024 "$REPO/scripts/experiments/compression.sh"
fi
}
main "$@"; exit $?
