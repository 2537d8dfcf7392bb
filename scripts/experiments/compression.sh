#!/usr/bin/env bash
# SparC³ Table-1 compression experiment (WikiText-2 perplexity after one-shot pruning, no fine-tuning).
#
#   dense, magnitude, Wanda, gradient, LRP at 50% `row` and at 2:4 (`nm:2:4`), calibration seeds SEEDS,
#   LRP with more reference samples (EXTRA_LRP_SAMPLES), and a sparsity sweep (SPARSITIES, `row`, seed
#   SWEEP_SEED) for the plot. Results: docs/results/compression.{md,json,svg} via compression_report.py.
#
# Every relevance/score file is computed ONCE per (method, seed, samples, seqlen) with `workbench attribute`
# and reused for every scheme/sparsity through `prune --scores`; magnitude needs no calibration. Each pruned
# checkpoint (~540 MB) is deleted right after its perplexity is measured. Resumable: a step whose output
# exists is skipped (an interrupted `attribute` continues from its .partial with --resume, an interrupted
# perplexity from its .ppl.progress file at the next window, reusing the pruned checkpoint it was measuring).
#
# Defaults = the FULL protocol. Every knob is an environment variable (the lists SPARSITIES, EXTRA_LRP_SAMPLES,
# PROBES, PROBE_SEEDS may be set empty to skip their steps):
#   SEQLEN=2048 SAMPLES=128 SEEDS="0 1 2"       calibration windows of the C4 sample (--text)
#   EVAL_SEQLEN=2048 EVAL_WINDOWS=              WikiText-2 window length; empty = all windows
#   SPARSITIES="0.1 0.2 0.3 0.4 0.5 0.6 0.7"    row-wise sweep for the plot (seed SWEEP_SEED=0)
#   EXTRA_LRP_SAMPLES="512 1024"                LRP reference-set sizes for the trend (seed SWEEP_SEED)
#   METHODS="magnitude wanda gradient lrp"
#   WORKBENCH_ASSETS=../shared/assets           (relative to the repo) eval/c4/…, eval/wikitext-2-raw/…
#   WORKBENCH_BIN=.build/release/workbench      MODEL=models/SmolLM2-135M-Instruct.Q4_1.gguf
#   OUT=out/experiments/compression             RESULTS=docs/results    KEEP=0 (1 keeps relevance files)
#   CHECKPOINT_EVERY=32                          attribute --checkpoint-every (each checkpoint writes ~425 MB)
#   SHARDS=1                                     >1: each score file is computed as SHARDS parts (`attribute --shard
#                                                K/SHARDS`, one after another, each resumable) and `merge`d; a finished
#                                                part survives an interruption, so a long run loses at most one part
#                                                (parts: $OUT/scores/parts/, ~850 MB each, removed by the merge)
#   NICE=                                        run every workbench step under `nice -n NICE` (shared machines)
#   REPORT=1                                     run compression_report.py at the end
#   PROBES="lrp-abs gradient-abs lrp-apt gradient-apt"
#                                                extra: LRP/gradient with --abs-per-sample ("-abs", mean of |R| per
#                                                sample) and --abs-per-token ("-apt", Σ_t |R_t|), seeds
#   PROBE_SEEDS="$SEEDS"                         PROBE_SEEDS, 50% row and 2:4 (an aggregation check, not Table 1)
#
# Run the long job in the background:
#   mkdir -p out/experiments/compression
#   nohup scripts/experiments/compression.sh > out/experiments/compression/log.txt 2>&1 &
set -euo pipefail

# Everything runs inside main(): bash parses the whole function before running it, so editing this file
# while a long run is in progress cannot change or break that run.
main() {
source "$(dirname "${BASH_SOURCE[0]}")/common.sh"
exp_env

SEQLEN="${SEQLEN:-2048}"
SAMPLES="${SAMPLES:-128}"
SEEDS="${SEEDS:-0 1 2}"
EVAL_SEQLEN="${EVAL_SEQLEN:-2048}"
EVAL_WINDOWS="${EVAL_WINDOWS:-}"
SPARSITIES="${SPARSITIES-0.1 0.2 0.3 0.4 0.5 0.6 0.7}"
SWEEP_SEED="${SWEEP_SEED:-0}"
EXTRA_LRP_SAMPLES="${EXTRA_LRP_SAMPLES-512 1024}"
METHODS="${METHODS:-magnitude wanda gradient lrp}"
OUT="${OUT:-out/experiments/compression}"
RESULTS="${RESULTS:-docs/results}"
KEEP="${KEEP:-0}"
CHECKPOINT_EVERY="${CHECKPOINT_EVERY:-32}"
SHARDS="${SHARDS:-1}"
NICE="${NICE:-}"
REPORT="${REPORT:-1}"
PROBES="${PROBES-lrp-abs gradient-abs lrp-apt gradient-apt}"
PROBE_SEEDS="${PROBE_SEEDS-$SEEDS}"

C4="$WORKBENCH_ASSETS/eval/c4/c4_pfdecoding_1480.jsonl"
WIKI="$WORKBENCH_ASSETS/eval/wikitext-2-raw/wiki.test.raw"
B="$WORKBENCH_BIN"
[[ "$SHARDS" =~ ^[1-9][0-9]*$ ]] || { echo "compression.sh: SHARDS=$SHARDS is not a positive integer" >&2; exit 64; }
RUN=(); [[ -n "$NICE" ]] && RUN=(nice -n "$NICE")

for f in "$B" "$MODEL" "$C4" "$WIKI"; do
    [[ -e "$f" ]] || { echo "compression.sh: missing $f" >&2; exit 1; }
done

mkdir -p "$OUT/scores" "$OUT/pruned" "$OUT/results"
STEPS="$OUT/steps.tsv"          # step, seconds, finished-at (appended; survives resumes)
[[ -f "$STEPS" ]] || printf 'step\tseconds\tfinished\n' > "$STEPS"

# The configuration of this run. Settings that change result values (calibration window length, evaluation
# windows, model, data) must match those of results already in $OUT; a resume with different ones is refused,
# because results of different configurations must not be mixed. SEEDS / SAMPLES / SPARSITIES /
# EXTRA_LRP_SAMPLES / METHODS only select steps (they are part of every result's key) and may change.
CONFIG="$OUT/config.json" FIXED="$OUT/fixed_settings.json"
fixed_now=$(cat <<EOF
{"seqlen": $SEQLEN, "eval_seqlen": $EVAL_SEQLEN, "eval_windows": "${EVAL_WINDOWS:-all}",
 "model": "$MODEL", "c4": "$C4", "wikitext": "$WIKI"}
EOF
)
config_now=$(cat <<EOF
{"seqlen": $SEQLEN, "samples": $SAMPLES, "seeds": "$SEEDS", "eval_seqlen": $EVAL_SEQLEN,
 "eval_windows": "${EVAL_WINDOWS:-all}", "sparsities": "$SPARSITIES", "sweep_seed": $SWEEP_SEED,
 "extra_lrp_samples": "$EXTRA_LRP_SAMPLES", "methods": "$METHODS", "probes": "$PROBES", "probe_seeds": "$PROBE_SEEDS", "model": "$MODEL",
 "c4": "$C4", "wikitext": "$WIKI", "checkpoint_every": $CHECKPOINT_EVERY, "shards": $SHARDS}
EOF
)
if [[ -f "$FIXED" ]]; then
    if [[ "$(cat "$FIXED")" != "$fixed_now" ]]; then
        echo "compression.sh: $OUT holds results of other settings; use another OUT= or delete $OUT" >&2
        diff <(cat "$FIXED") <(echo "$fixed_now") >&2 || true
        exit 1
    fi
else
    echo "$fixed_now" > "$FIXED"
fi
echo "$config_now" > "$CONFIG"
[[ -f "$OUT/started_at" ]] || date -u +%Y-%m-%dT%H:%M:%SZ > "$OUT/started_at"
{
    echo "workbench_bin: $B"
    echo "git_head: $(git -C "$REPO" rev-parse HEAD 2>/dev/null || echo unknown)"
    echo "binary_sha256: $(sha256sum "$B" | cut -d' ' -f1)"
    echo "binary_git_head: $(git -C "$(dirname "$B")/../.." rev-parse HEAD 2>/dev/null || echo unknown)"
    echo "nproc: $(nproc)"
    echo "uname: $(uname -srm)"
} > "$OUT/environment.txt"

log() { echo "[$(date -u +%H:%M:%S)] $*"; }
now() { date +%s.%N; }
record() { printf '%s\t%.1f\t%s\n' "$1" "$(echo "$(now) - $2" | bc)" "$(date -u +%H:%M:%S)" >> "$STEPS"; }

EVAL_ARGS=(--text "$WIKI" --seqlen "$EVAL_SEQLEN" --json)
# A killed evaluation resumes at its next window (perplexity --progress; binaries before it simply start over).
PPL_HELP=$("$B" perplexity --help 2>&1 || true)
HAS_PROGRESS=0; [[ "$PPL_HELP" == *--progress* ]] && HAS_PROGRESS=1
[[ -n "$EVAL_WINDOWS" ]] && EVAL_ARGS+=(--max-windows "$EVAL_WINDOWS")

# scores_file METHOD SEED N -> path of the relevance/score file (computed once, reused)
scores_file() { echo "$OUT/scores/$1_seed$2_n$3_len$SEQLEN.safetensors"; }

attribute() {  # METHOD SEED N
    local m=$1 s=$2 n=$3 f; f=$(scores_file "$m" "$s" "$n")
    [[ -f "$f" ]] && return 0
    local resume=(); [[ -f "$f.partial" ]] && resume=(--resume)
    log "attribute $m seed=$s samples=$n seqlen=$SEQLEN ${resume[*]}"
    local t0; t0=$(now)
    local variant=()   # "<method>-abs": --abs-per-sample (PXP: mean of |R| per sample); "-apt": --abs-per-token
    [[ "$m" == *-abs ]] && variant=(--abs-per-sample)
    [[ "$m" == *-apt ]] && variant=(--abs-per-token)
    local base="${m%-abs}"; base="${base%-apt}"
    local args=(attribute --model "$MODEL" --text "$C4" --seqlen "$SEQLEN" --samples "$n" --seed "$s"
                --method "$base" "${variant[@]}" --checkpoint-every "$CHECKPOINT_EVERY" --quiet)
    local name; name=$(basename "$f" .safetensors)
    if (( SHARDS == 1 )); then
        "${RUN[@]}" "$B" "${args[@]}" --out "$f" "${resume[@]}" > "$OUT/scores/$name.log" 2>&1 \
            || { cat "$OUT/scores/$name.log" >&2; return 1; }
        tail -n 3 "$OUT/scores/$name.log"
    else
        # Shards one after another: each finished part is kept, so an interruption costs at most the
        # samples since the current part's last checkpoint; the merge checks the parts belong together.
        mkdir -p "$OUT/scores/parts"
        local parts=() k
        for (( k = 0; k < SHARDS; k++ )); do
            local part="$OUT/scores/parts/$name.part-$k-of-$SHARDS.safetensors" presume=()
            parts+=("$part")
            [[ -f "$part" ]] && continue
            [[ -f "$part.partial" ]] && presume=(--resume)
            log "  shard $k/$SHARDS ${presume[*]}"
            local ts; ts=$(now)
            "${RUN[@]}" "$B" "${args[@]}" --shard "$k/$SHARDS" --out "$part" "${presume[@]}" \
                > "$OUT/scores/parts/$name.part-$k.log" 2>&1 \
                || { cat "$OUT/scores/parts/$name.part-$k.log" >&2; return 1; }
            record "attribute-shard/$m/seed$s/n$n/$k-of-$SHARDS" "$ts"
        done
        log "  merge $SHARDS parts"
        "${RUN[@]}" "$B" merge "${parts[@]}" --out "$f" --quiet > "$OUT/scores/$name.log" 2>&1 \
            || { cat "$OUT/scores/$name.log" >&2; return 1; }
        tail -n 4 "$OUT/scores/$name.log"
    fi
    record "attribute/$m/seed$s/n$n" "$t0"
}

# evaluate KEY METHOD SEED N SCHEME SPARSITY  (method "dense": no pruning)
evaluate() {
    local key=$1 m=$2 s=$3 n=$4 scheme=$5 sp=$6
    local res="$OUT/results/$key.json"
    [[ -f "$res" ]] && { log "skip $key (done)"; return 0; }
    local t0; t0=$(now)
    local model="$MODEL" dir="$OUT/pruned/$key"
    if [[ "$m" != dense ]]; then
        local src=(); local spa=()
        if [[ "$m" == magnitude ]]; then
            src=(--method magnitude)
        else
            attribute "$m" "$s" "$n"       # computed once, on first need; later keys reuse the file
            t0=$(now)
            src=(--scores "$(scores_file "$m" "$s" "$n")")
        fi
        [[ "$scheme" == nm:* ]] || spa=(--sparsity "$sp")
        if [[ -f "$dir/pruning.json" && -f "$OUT/results/$key.ppl.progress" ]]; then
            log "reuse $dir (its perplexity resumes)"    # prune writes atomically: a directory there is complete
        else
            log "prune $key"
            "${RUN[@]}" "$B" prune --model "$MODEL" "${src[@]}" --scheme "$scheme" "${spa[@]}" --out "$dir" --force \
                > "$OUT/results/$key.prune.log" 2>&1 || { cat "$OUT/results/$key.prune.log" >&2; return 1; }
        fi
        cp "$dir/pruning.json" "$OUT/results/$key.pruning.json"
        if [[ ( "$s" == "$SWEEP_SEED" || "$s" == - ) && ( "$sp" == 0.5 || "$scheme" == nm:* ) ]]; then
            "${RUN[@]}" "$B" sparsity --model "$dir" --json > "$OUT/results/$key.sparsity.json" 2>/dev/null || true
        fi
        model="$dir"
    fi
    local t1; t1=$(now)
    log "perplexity $key"
    local prog=(); (( HAS_PROGRESS )) && prog=(--progress "$OUT/results/$key.ppl.progress")
    "${RUN[@]}" "$B" perplexity --model "$model" "${EVAL_ARGS[@]}" "${prog[@]}" \
        > "$OUT/results/$key.ppl.out" 2> "$OUT/results/$key.ppl.err" \
        || { cat "$OUT/results/$key.ppl.err" >&2; return 1; }
    rm -f "$OUT/results/$key.ppl.progress"
    local ppl_json; ppl_json=$(tail -n 1 "$OUT/results/$key.ppl.out")
    [[ "$m" != dense ]] && rm -rf "$dir"
    local t2; t2=$(now)
    cat > "$res.tmp" <<EOF
{"key": "$key", "method": "$m", "seed": "$s", "samples": "$n", "calib_seqlen": $SEQLEN, "scheme": "$scheme",
 "sparsity": "$sp", "prune_seconds": $(printf '%.3f' "$(echo "$t1 - $t0" | bc)"), "ppl_seconds": $(printf '%.3f' "$(echo "$t2 - $t1" | bc)"),
 "perplexity": $ppl_json}
EOF
    mv "$res.tmp" "$res"
    log "  $key: $(echo "$ppl_json" | sed -n 's/.*"perplexity":\([0-9.e+-]*\).*/ppl \1/p')"
    record "eval/$key" "$t0"
}

T_START=$(now)
log "configuration: $config_now"
log "binary: $B"

# 1. dense
evaluate dense dense - 0 none 0

# 2. Table 1: 50% row and 2:4, every calibration seed (magnitude has no calibration: once)
for m in $METHODS; do
    if [[ $m == magnitude ]]; then
        evaluate "magnitude_row0.5" magnitude - 0 row 0.5
        evaluate "magnitude_nm2-4" magnitude - 0 nm:2:4 0.5
    fi
done
for s in $SEEDS; do
    for m in $METHODS; do
        [[ $m == magnitude ]] && continue
        evaluate "${m}_seed${s}_n${SAMPLES}_row0.5" "$m" "$s" "$SAMPLES" row 0.5
        evaluate "${m}_seed${s}_n${SAMPLES}_nm2-4" "$m" "$s" "$SAMPLES" nm:2:4 0.5
    done
done

# 3. LRP with more reference samples (seed SWEEP_SEED)
if [[ " $METHODS " == *" lrp "* ]]; then
    for n in $EXTRA_LRP_SAMPLES; do
        evaluate "lrp_seed${SWEEP_SEED}_n${n}_row0.5" lrp "$SWEEP_SEED" "$n" row 0.5
        evaluate "lrp_seed${SWEEP_SEED}_n${n}_nm2-4" lrp "$SWEEP_SEED" "$n" nm:2:4 0.5
    done
fi

# 4. sparsity sweep (row, seed SWEEP_SEED, SAMPLES); 0.5 reuses step 2
for sp in $SPARSITIES; do
    for m in $METHODS; do
        if [[ $m == magnitude ]]; then
            evaluate "magnitude_row$sp" magnitude - 0 row "$sp"
        else
            evaluate "${m}_seed${SWEEP_SEED}_n${SAMPLES}_row$sp" "$m" "$SWEEP_SEED" "$SAMPLES" row "$sp"
        fi
    done
done

# 5. aggregation probes (not part of SparC³ Table 1): the same method with |R| averaged per sample
#    (--abs-per-sample, the PXP convention) or summed per position (--abs-per-token) instead of the
#    signed mean, seeds PROBE_SEEDS, SAMPLES samples
for s in $PROBE_SEEDS; do
    for m in $PROBES; do
        evaluate "${m}_seed${s}_n${SAMPLES}_row0.5" "$m" "$s" "$SAMPLES" row 0.5
        evaluate "${m}_seed${s}_n${SAMPLES}_nm2-4" "$m" "$s" "$SAMPLES" nm:2:4 0.5
    done
done

record "run(this invocation)" "$T_START"
date -u +%Y-%m-%dT%H:%M:%SZ > "$OUT/finished_at"
log "all steps done"

if [[ "$KEEP" != 1 ]]; then
    log "deleting relevance files (KEEP=1 keeps them)"
    rm -f "$OUT"/scores/*.safetensors "$OUT"/scores/*.partial
fi
rmdir "$OUT/pruned" 2>/dev/null || true

if [[ "$REPORT" == 1 ]]; then
    python3 "$REPO/scripts/experiments/compression_report.py" --out "$OUT" --results "$RESULTS"
fi
}

main "$@"; exit $?  # one line: bash has read it before main runs, so later edits of this file are harmless
