#!/usr/bin/env bash
# Runs every fuzz target for SECONDS each (default 60):
#
#   scripts/fuzz.sh [SECONDS] [TARGET ...]
#
# cargo-fuzz (installed if missing) with libFuzzer's coverage guidance, on
# stable Rust: without AddressSanitizer (`-s none`), which needs a nightly
# rustc (none can be installed here). The corpus lives in fuzz/corpus/TARGET
# and grows with each run (commit what it adds); a crash leaves its input in
# fuzz/artifacts/TARGET and fails the script: make it a regression test
# (the corpus is replayed by `cargo test`, see codec/src/proptests.rs).
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
seconds=${1:-60}
shift || true
# The runtime's targets link libpq and librdkafka, as the runtime does.
"$root/scripts/postgres.sh" install
"$root/scripts/kafka.sh" install
command -v cargo-fuzz >/dev/null || cargo install cargo-fuzz --locked
cd "$root/fuzz"
targets=("$@")
[ ${#targets[@]} -gt 0 ] || mapfile -t targets < <(cargo fuzz list)
for t in "${targets[@]}"; do
    mkdir -p "corpus/$t"
    echo "== $t ($seconds s)"
    cargo fuzz run -s none --release "$t" "corpus/$t" -- \
        -max_total_time="$seconds" -max_len=4096 -print_final_stats=1 2>&1 \
        | grep -E "^Done|^stat::number_of_executed_units|ERROR|SUMMARY|panicked" || true
    if [ -n "$(ls -A "artifacts/$t" 2>/dev/null)" ]; then
        echo "fuzz.sh: $t found a crash: fuzz/artifacts/$t" >&2
        exit 1
    fi
done
