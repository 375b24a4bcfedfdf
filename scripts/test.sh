#!/usr/bin/env bash
# The whole test suite: builds the WASM plugins and fixtures (installing the
# wasm32-wasip2 target if needed), then runs every unit, golden-file and
# end-to-end test against the real `sluice` binary, PostgreSQL servers included.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root"
# PostgreSQL 15 and libpq: the PostgreSQL tests start their own servers on
# 127.0.0.1 with scripts/postgres.sh (a test fails when it cannot).
"$root/scripts/postgres.sh" install
"$root/scripts/build-plugins.sh"
cargo test --release --locked --workspace \
    --exclude sluice-fixture-misbehave --exclude sluice-fixture-other-world
