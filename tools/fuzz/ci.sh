#!/usr/bin/env bash
# CI fuzz check (issue 12): replays the saved regression fixtures (Tests/Fixtures/fuzz), then
# runs a short fixed-seed campaign against the release binary built with its real flags
# (-Ounchecked, where overflow hides). Fails on any crash, hang or changed input.
# About 40 s of runs on 2 cores, plus building the harness once (~30 s).
# Environment: FUZZ_RUNS (default 300), FUZZ_SEED (default 1), FUZZ_REPORT (default
# .build/fuzz-report.json), WORKBENCH_ASSETS (stories260K seeds, optional).
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
cd "$ROOT"
if ! command -v swift >/dev/null 2>&1 && [ -x /opt/swift/usr/bin/swift ]; then
    export PATH="/opt/swift/usr/bin:$PATH"
fi
if [ -z "${WORKBENCH_ASSETS:-}" ] && [ -d "$ROOT/../shared/assets" ]; then
    export WORKBENCH_ASSETS="$(cd "$ROOT/../shared/assets" && pwd)"
fi

# Incremental: a no-op when the release binary is current, and never fuzz a stale one.
swift build -c release --product workbench
swift build -c release --package-path tools/fuzz
FUZZ=tools/fuzz/.build/release/fuzz
W=.build/release/workbench

status=0
echo "fuzz-ci: replaying regression fixtures"
"$FUZZ" --workbench "$W" --replay Tests/Fixtures/fuzz || status=1
echo "fuzz-ci: ${FUZZ_RUNS:-300} runs, seed ${FUZZ_SEED:-1}"
start=$(date +%s)
"$FUZZ" --workbench "$W" --runs "${FUZZ_RUNS:-300}" --seed "${FUZZ_SEED:-1}" --jobs 2 \
    --report "${FUZZ_REPORT:-.build/fuzz-report.json}" || status=1
echo "fuzz-ci: campaign took $(( $(date +%s) - start )) s"
if [ "$status" -ne 0 ]; then
    echo "fuzz-ci: FAILED (a fixture or a run crashed, hung or changed an input; see above)" >&2
    exit 1
fi
echo "fuzz-ci: passed"
