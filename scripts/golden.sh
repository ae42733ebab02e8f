#!/usr/bin/env bash
# Golden-vector checks that need Node (the Rust side is `cargo test -p connect-core --test golden`):
#   1. tests/golden/vectors.json is what the pinned JS SDK (tests/js/package-lock.json) writes now;
#   2. the JS SDK decodes every frame in tests/golden/rust_frames.json (written by our encoder) to
#      its payload JSON and re-encodes it byte for byte (--strict-bytes).
# Without node/npm: exit 1 under CI=true, otherwise print "skipped: node not found" and exit 0.
set -euo pipefail
cd "$(dirname "$0")/.."

if ! command -v node >/dev/null 2>&1 || ! command -v npm >/dev/null 2>&1; then
  missing=$(for t in node npm; do command -v "$t" >/dev/null 2>&1 || printf '%s ' "$t"; done)
  if [ "${CI:-}" = "true" ]; then
    echo "golden.sh: ${missing}not found; CI needs Node.js and npm to check the golden vectors against the JS SDK" >&2
    exit 1
  fi
  echo "skipped: node not found (missing: ${missing% })"
  exit 0
fi

if [ ! -d tests/js/node_modules/inngest ]; then
  npm ci --prefix tests/js --no-audit --no-fund
fi

node tests/js/golden.mjs --verify
node tests/js/golden.mjs --check tests/golden/rust_frames.json --strict-bytes
