#!/usr/bin/env bash
# The project's test command (the README's second command). Installs what the
# tests need from the project's own files (crates from Cargo.lock, the pinned
# npm packages from tests/js/package-lock.json), then runs every check CI runs.
# Tests that need Node fail loudly when CI=true and Node is missing.
set -euo pipefail
cd "$(dirname "$0")/.."
export CARGO_TERM_COLOR=never

step() { printf '\n==> %s\n' "$*"; }

step "format"
cargo fmt --all --check
step "lints"
cargo clippy --workspace --all-targets --locked -- -D warnings
step "golden vectors against the Inngest JS SDK"
./scripts/golden.sh
step "tests"
cargo test --workspace --locked
step "chaos soak (reduced: 1,000 runs through a fault-injecting proxy, every adapter)"
cargo run --locked -q -p connect-chaos -- soak --runs 1000
