#!/usr/bin/env bash
# Peak memory (and time) of `sluice verify --full` (the comparison of every
# row, through temporary files) on tables of several sizes:
# a PostgreSQL → PostgreSQL pipeline with no plugins, source and target
# tables identical (bigint key, text, numeric, timestamptz, jsonb), on a
# PostgreSQL 15 server of its own on 127.0.0.1. Results for BENCHMARKS.md.
#
#   scripts/bench-verify-memory.sh [ROWS ...]     (default: 1000000 5000000)
#
# Needs the release binary (cargo build --release -p sluice-runtime) and
# GNU time (/usr/bin/time, Debian package `time`).
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
sluice=${CARGO_TARGET_DIR:-$root/target}/release/sluice
[ -x "$sluice" ] || { echo "build the release binary first" >&2; exit 1; }
[ -x /usr/bin/time ] || apt-get install -y -qq time >/dev/null
"$root/scripts/postgres.sh" install
work=$(mktemp -d /tmp/sluice-bench-verify.XXXXXX)
chmod 755 "$work"  # the server runs as `postgres` inside it
port=$(python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
trap '"$root/scripts/postgres.sh" stop "$work/pg" immediate; rm -rf "$work"' EXIT
"$root/scripts/postgres.sh" start "$work/pg" "$port"
export PGPASSWORD=postgres
psql() { command psql -q -X -v ON_ERROR_STOP=1 -h 127.0.0.1 -p "$port" -U postgres "$@"; }
psql -d postgres -c 'CREATE DATABASE legacy' -c 'CREATE DATABASE target'
cat >"$work/pipeline.toml" <<TOML
name = "bench_verify"
[source]
type = "postgres"
url = "postgres://postgres@127.0.0.1:$port/legacy"
tables = ["t"]
[sink]
type = "postgres"
url = "postgres://postgres@127.0.0.1:$port/target"
TOML
echo "machine: $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | xargs), $(nproc) cores, $(date -u +%F)"
for rows in "${@:-1000000 5000000}"; do
    for db in legacy target; do
        psql -d "$db" -c "DROP TABLE IF EXISTS t" -c "CREATE TABLE t (id bigint PRIMARY KEY, name text, amount numeric(12,2), at timestamptz, doc jsonb)" \
            -c "INSERT INTO t SELECT i, 'customer ' || i || ' ' || md5(i::text), (i % 100000) / 100.0, timestamptz '2020-01-01' + i * interval '1 second', jsonb_build_object('i', i, 'tag', 't' || (i % 7)) FROM generate_series(1, $rows) i"
    done
    /usr/bin/time -f '%M %e' -o "$work/time" "$sluice" verify --full "$work/pipeline.toml" >"$work/report" 2>&1 \
        || { cat "$work/report" >&2; exit 1; }
    read -r kib secs <"$work/time"
    grep -q '^identical' "$work/report" || { cat "$work/report" >&2; exit 1; }
    echo "rows $rows: identical, peak RSS $((kib / 1024)) MiB, $secs s ($(python3 -c "print(round($rows / $secs))") rows/s)"
done
