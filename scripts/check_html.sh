#!/usr/bin/env bash
# Render HTML pages the workbench wrote in headless Chromium (Debian's `chromium`) and fail when a page is
# not self-contained or logs anything to the console. Our pages never log, so any console line (an uncaught
# exception, console.error/warn/log) is a failure; Chromium's logging does not tell levels apart.
#   scripts/check_html.sh [--shots DIR] PAGE.html...
# Writes DIR/<page>.png (default: beside each page) so a person can look at it. Exit 0 = every page clean.
set -euo pipefail
shots=""
if [ "${1:-}" = "--shots" ]; then shots="$2"; shift 2; fi
[ "$#" -gt 0 ] || { echo "Usage: scripts/check_html.sh [--shots DIR] PAGE.html..." >&2; exit 64; }
BROWSER="$(command -v chromium || command -v chromium-browser || true)"
[ -n "$BROWSER" ] || { echo "Error: chromium not found (scripts/setup.sh installs Debian's chromium)" >&2; exit 1; }
fail=0
for page in "$@"; do
    [ -f "$page" ] || { echo "Error: $page: no such file" >&2; fail=1; continue; }
    abs="$(cd "$(dirname "$page")" && pwd)/$(basename "$page")"
    # External references would need the network: the reports must carry everything inline.
    if grep -Eoi '(src|href)="(https?:)?//[^"]*"|<link[^>]*stylesheet|@import' "$page" | head -3 | grep -q .; then
        echo "FAIL: $page refers to an external resource:" >&2
        grep -Eoi '(src|href)="(https?:)?//[^"]*"|<link[^>]*stylesheet|@import' "$page" | head -3 >&2
        fail=1
    fi
    out="${shots:-$(dirname "$abs")}/$(basename "$page" .html).png"
    mkdir -p "$(dirname "$out")"
    log="$(mktemp)"
    timeout 60 "$BROWSER" --headless --no-sandbox --disable-gpu --hide-scrollbars --enable-logging=stderr --v=0 \
        --virtual-time-budget=3000 --window-size=1400,1800 --screenshot="$out" "file://$abs" >"$log" 2>&1 || true
    if grep -q 'CONSOLE' "$log"; then
        echo "FAIL: $page logged to the console:" >&2
        grep 'CONSOLE' "$log" | sed 's/^[^"]*//' | head -5 >&2
        fail=1
    fi
    if [ ! -s "$out" ]; then
        echo "FAIL: $page: no screenshot written ($(tail -1 "$log"))" >&2
        fail=1
    else
        echo "ok: $page → $out"
    fi
    rm -f "$log"
done
exit "$fail"
