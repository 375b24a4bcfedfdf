#!/usr/bin/env bash
# The whole test suite: builds the WASM plugins and fixtures (installing the
# wasm32-wasip2 target if needed), then runs every unit, golden-file and
# end-to-end test against the real `sluice` binary, PostgreSQL servers included,
# the console in a headless Chromium, and the example plugins in Rust, Python,
# JavaScript and C.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root"
# PostgreSQL 15 and libpq: the PostgreSQL tests start their own servers on
# 127.0.0.1 with scripts/postgres.sh (a test fails when it cannot).
"$root/scripts/postgres.sh" install
# cmake and OpenSSL headers (the Kafka connectors build librdkafka), and the
# tansu broker the Kafka tests start on 127.0.0.1 with scripts/kafka.sh.
"$root/scripts/kafka.sh" install
# MariaDB: the MySQL source tests start their own servers on 127.0.0.1
# with scripts/mariadb.sh (a test fails when it cannot).
"$root/scripts/mariadb.sh" install
# Debian's Chromium, for the console's browser tests (tests/e2e/console.rs).
"$root/scripts/chromium.sh" install
"$root/scripts/build-plugins.sh"
# The pinned plugin toolchains (componentize-py, componentize-qjs, clang-19 +
# wasi-libc), installed by the same command a plugin author runs.
# The small `sluice` without the default features (no PostgreSQL, Kafka,
# admin API or plugin toolchain), kept as `sluice-minimal` for the test
# that runs it; then the full one.
target_dir=${CARGO_TARGET_DIR:-$root/target}
cargo build --release --locked -p sluice-runtime --bin sluice --no-default-features
cp "$target_dir/release/sluice" "$target_dir/release/sluice-minimal.tmp"
mv "$target_dir/release/sluice-minimal.tmp" "$target_dir/release/sluice-minimal"
cargo build --release --locked -p sluice-runtime --bin sluice
"$target_dir/release/sluice" plugin setup rust python js c
cargo test --release --locked --workspace \
    --exclude sluice-fixture-misbehave --exclude sluice-fixture-other-world
# The Python SDK's batch encoding, natively (it runs inside components in
# the end-to-end tests).
PYTHONDONTWRITEBYTECODE=1 python3 -m unittest discover -s sdk/python/tests
# The same for the JavaScript SDK, by Node (which `plugin setup js` needs too).
node --test sdk/js/tests/
# The SDK's connector glue is compiled only for a source or a sink.
cargo test --release --locked -p sluice-sdk --no-default-features --features source --lib
# Connectors are their own workspaces (as a vendor's would be): their unit
# tests run natively here; the end-to-end tests above built and ran them.
cargo test --release --locked --manifest-path connectors/http-api-source/Cargo.toml
