#!/usr/bin/env bash
# A/B of bench --lrp: A = 429ab19 (before the layout change), B = main 23b4695; interleaved A B A B A B.
# Binaries: $BIN_DIR/wb-base = release build of 429ab19 (git worktree add --detach /work/base 429ab19; ln -s .../models; swift build -c release),
#           $BIN_DIR/wb-before = release build of main 23b4695. Resumable: a finished leg ($OUT/TAG.json) is skipped.
set -u
mkdir -p "${OUT:-/tmp/ab}"
cd "$(dirname "$0")/../.."
export OPENBLAS_NUM_THREADS=2 WORKBENCH_ASSETS=${WORKBENCH_ASSETS:-/work/shared/assets}
for i in 1 2 3; do
  for b in base before; do
    tag=$b-$i
    [ -s ${OUT:-/tmp/ab}/$tag.json ] && continue
    date -u +%H:%M:%S > ${OUT:-/tmp/ab}/$tag.start
    nice -n -5 ${BIN_DIR:-/tmp}/wb-$b bench --model models/SmolLM2-135M-Instruct.Q4_1.gguf --lrp --runs 3 --json > ${OUT:-/tmp/ab}/$tag.json.tmp 2> ${OUT:-/tmp/ab}/$tag.err && mv ${OUT:-/tmp/ab}/$tag.json.tmp ${OUT:-/tmp/ab}/$tag.json
    uptime >> ${OUT:-/tmp/ab}/$tag.err
  done
done
echo all done
