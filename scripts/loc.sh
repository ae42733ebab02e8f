#!/usr/bin/env bash
# Lines of non-test code per crate, for the README's architecture section:
# every `src/**/*.rs` line before a file's `#[cfg(test)]` module (test modules
# sit at the end of their files here), without tests/, examples/ or benches/,
# test-module files (`tests.rs`) or the test and fuzz support behind
# connect-core's `fuzzing` feature (`src/fuzz/`).
# "code" leaves out blank lines and comments (doc comments included).
set -euo pipefail
cd "$(dirname "$0")/.."
printf '%-20s %7s %7s\n' crate lines code
for dir in connect-core connect-adapter connect-tokio connect-blocking connect-async-std connect-dev; do
    [ -d "$dir/src" ] || continue
    find "$dir/src" -name '*.rs' ! -name tests.rs ! -path '*/src/fuzz/*' -print0 | xargs -0 awk '
        FNR == 1 { in_tests = 0 }
        /^#\[cfg\(test\)\]/ { in_tests = 1 }
        in_tests { next }
        { lines++ }
        !/^[[:space:]]*$/ && !/^[[:space:]]*\/\// { code++ }
        END { printf "%d %d\n", lines, code }
    ' | { read -r lines code; printf '%-20s %7d %7d\n' "$dir" "$lines" "$code"; }
done
