#!/usr/bin/env bash
# The project's test command (README, CI): the XCTest suite, then the fuzz check — the saved
# regression inputs replayed and a short fixed-seed campaign against the release binary built
# with its real flags (tools/fuzz/ci.sh). Needs the release build of scripts/setup.sh.
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"
if ! command -v swift >/dev/null 2>&1 && [ -x /opt/swift/usr/bin/swift ]; then
    export PATH="/opt/swift/usr/bin:$PATH"
fi
if [ -z "${WORKBENCH_ASSETS:-}" ] && [ -d "$ROOT/../shared/assets" ]; then
    export WORKBENCH_ASSETS="$(cd "$ROOT/../shared/assets" && pwd)"
fi
start=$(date +%s)
swift test --disable-swift-testing
echo "test: XCTest suite passed in $(( $(date +%s) - start )) s"
tools/fuzz/ci.sh
echo "test: all passed in $(( $(date +%s) - start )) s"
