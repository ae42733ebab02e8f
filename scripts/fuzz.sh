#!/usr/bin/env bash
# Run each cargo-fuzz target for a number of minutes on the stable toolchain
# (`-s none`: no sanitizer, which needs nightly; `-O -a`: optimized, with
# debug assertions and overflow checks on).
#
#   scripts/fuzz.sh [MINUTES] [TARGET...]   default: 1 minute each, every target
#   FUZZ_MERGE=1 scripts/fuzz.sh 10         also merge inputs with new coverage into fuzz/corpus/
#   FUZZ_JOBS=2 scripts/fuzz.sh 5           parallel fuzzing processes per target (default 1)
#
# Targets: frame, worker_ops, gateway_ops (bodies in connect-core/src/fuzz/). Each run starts
# from the committed corpus (fuzz/corpus/<target>/) copied into fuzz/target/work/<target>/, so the
# committed corpus only grows when asked to (FUZZ_MERGE=1, which keeps it minimal). A crash leaves
# its input in fuzz/artifacts/<target>/ and makes this script exit 1; commit that input into
# fuzz/corpus/<target>/ with the fix, and `cargo test -p connect-core --test fuzz_corpus` replays it.
# Needs cargo-fuzz (`cargo install cargo-fuzz --locked`) and a C++ compiler (libFuzzer).
set -euo pipefail
cd "$(dirname "$0")/../fuzz"

minutes=${1:-1}
shift || true
targets=("$@")
[ ${#targets[@]} -eq 0 ] && targets=(frame worker_ops gateway_ops)
jobs=${FUZZ_JOBS:-1}

if ! command -v cargo-fuzz >/dev/null 2>&1; then
  echo "fuzz.sh: cargo-fuzz not found; install it with: cargo install cargo-fuzz --locked" >&2
  exit 1
fi

cargo fuzz build -s none -O -a
failed=0
for t in "${targets[@]}"; do
  work=target/work/$t
  mkdir -p "$work" "artifacts/$t"
  cp -n corpus/"$t"/* "$work"/ 2>/dev/null || true
  echo "==> $t for $minutes min"
  log=target/work/$t.log
  parallel=()
  [ "$jobs" -gt 1 ] && parallel=(-fork="$jobs")
  if cargo fuzz run -s none -O -a "$t" "$work" -- \
      -max_total_time=$((minutes * 60)) -print_final_stats=1 -max_len=4096 "${parallel[@]}" \
      >"$log" 2>&1; then
    grep -E '^stat::(number_of_executed_units|average_exec_per_sec|new_units_added|peak_rss_mb)' "$log" || true
    grep -E '#[0-9]+ *DONE' "$log" | tail -n 1 || true
  else
    failed=1
    echo "!! $t crashed; the input is in fuzz/artifacts/$t/, the log in fuzz/$log:" >&2
    grep -E 'panicked|Test unit written|SUMMARY' "$log" | head -n 5 >&2 || true
  fi
  if [ "${FUZZ_MERGE:-0}" = 1 ]; then
    # Edges only (no counters, no value profile): a small corpus that still covers every edge seen.
    cargo fuzz run -s none -O -a "$t" "corpus/$t" "$work" -- -merge=1 -use_counters=0 -use_value_profile=0 -max_len=1024 \
      >/dev/null 2>&1 || true
    echo "    corpus/$t: $(ls "corpus/$t" | wc -l) inputs"
  fi
done
exit "$failed"
