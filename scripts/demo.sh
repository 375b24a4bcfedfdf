#!/usr/bin/env bash
# The demo: builds everything it needs (the wasm32-wasip2 target included),
# generates a messy legacy CRM export, migrates it into SQLite through the
# mapper -> cleanse -> validate plugins, and shows what came out and what
# was rejected and why. ROWS=200000 ./scripts/demo.sh for a smaller run.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root"
rows=${ROWS:-1000000}
# libpq (the PostgreSQL connectors link it) and PostgreSQL 15.
"$root/scripts/postgres.sh" install
# cmake and OpenSSL headers (the Kafka connectors build librdkafka), and tansu.
"$root/scripts/kafka.sh" install
"$root/scripts/build-plugins.sh"
cargo build --release --locked -p sluice-runtime -p sluice-example-legacy-crm
bin=${CARGO_TARGET_DIR:-$root/target}/release
ex=examples/legacy-crm
"$bin/legacy-crm" generate --rows "$rows" --out "$ex/data/customers.csv"
rm -rf "$ex/out"
"$bin/sluice" run "$ex/pipeline.toml" --reset
"$bin/legacy-crm" report --db "$ex/out/crm.db" --rejects "$ex/out/rejects.jsonl"
echo
echo "The target database: $ex/out/crm.db   dead letters: $ex/out/rejects.jsonl"
echo "Run it yourself: $bin/sluice run $ex/pipeline.toml --reset"
