#!/usr/bin/env bash
# The project's test command (the README's second command). Installs what the
# tests need from the project's own files, then runs every check CI runs.
set -euo pipefail
cd "$(dirname "$0")/.."
export CARGO_TERM_COLOR=never
cargo fmt --all --check
cargo clippy --workspace --all-targets -- -D warnings
cargo test --workspace
