#!/usr/bin/env bash
# Speed of `sluice verify` on a 5M-row table (BENCHMARKS.md §15): the full
# comparison (`--full`) and the comparison by key ranges, in the same run,
# on the same data, into a PostgreSQL target and into a SQLite target.
#
#   scripts/bench-verify.sh [ROWS]          (default 5000000)
#
# The source table has varied rows (text of varied length, Unicode, numeric,
# timestamptz, boolean, jsonb, nulls); the pipeline runs the `validate`
# plugin (which rejects the rows without an email) and the target is what
# `sluice run` wrote. Then, timed:
#   full        `verify --full`: every row of both sides, through the plugin
#   first       `verify`: the first by ranges (every range compared)
#   unchanged   `verify` again, nothing changed
#   10 diffs    10 rows changed by hand, scattered over the key space
#   100 diffs   100 more, scattered
# and the last two checked against `verify --full` (same counts).
# Needs the release binary and the plugins (scripts/build-plugins.sh).
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
target_dir=${CARGO_TARGET_DIR:-$root/target}
sluice=$target_dir/release/sluice
validate=$root/build/plugins/validate.wasm
[ -x "$sluice" ] || { echo "build the release binary first: cargo build --release -p sluice-runtime" >&2; exit 1; }
[ -f "$validate" ] || { echo "build the plugins first: scripts/build-plugins.sh" >&2; exit 1; }
rows=${1:-5000000}
"$root/scripts/postgres.sh" install
work=$(mktemp -d /tmp/sluice-bench-verify.XXXXXX)
chmod 755 "$work"  # the server runs as `postgres` inside it
port=$(python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
trap '"$root/scripts/postgres.sh" stop "$work/pg" immediate; rm -rf "$work"' EXIT
"$root/scripts/postgres.sh" start "$work/pg" "$port"
export PGPASSWORD=postgres
psql() { command psql -q -X -v ON_ERROR_STOP=1 -h 127.0.0.1 -p "$port" -U postgres "$@"; }
psql -d postgres -c 'CREATE DATABASE legacy' -c 'CREATE DATABASE target'
psql -d legacy <<SQL
SELECT setseed(0.42);
CREATE TABLE customers (
  id bigint PRIMARY KEY, name text, email text, city text,
  balance numeric(12,2), joined timestamptz, active boolean, tags jsonb);
INSERT INTO customers
SELECT i,
       initcap(md5(i::text)) || CASE WHEN i % 7 = 0 THEN ' Müller-Łukasz' ELSE '' END,
       CASE WHEN i % 97 = 0 THEN NULL ELSE 'user' || i || '@example.org' END,
       (ARRAY['Zürich', 'São Paulo', 'Łódź', 'Osaka', 'Lagos', 'Lima'])[1 + i % 6],
       round((random() * 1000000)::numeric, 2),
       timestamptz '2001-01-01' + (random() * 700000000) * interval '1 second',
       i % 3 <> 0,
       CASE WHEN i % 5 = 0 THEN NULL ELSE jsonb_build_object('tier', i % 4, 'tags', jsonb_build_array('t' || (i % 11), 'x' || (i % 17))) END
FROM generate_series(1, $rows) i;
VACUUM ANALYZE customers;
SQL
pipeline() {  # NAME SINK-TOML
    cat >"$work/$1.toml" <<TOML
name = "$1"
[source]
type = "postgres"
url = "postgres://postgres:postgres@127.0.0.1:$port/legacy"
tables = ["customers"]

[[transforms]]
name = "validate"
plugin = "$validate"
[transforms.config.fields]
email = { required = true, max_length = 200 }

[sink]
$2

[runtime]
state_dir = "$work/state-$1"
TOML
}
pipeline pg "type = \"postgres\"
url = \"postgres://postgres:postgres@127.0.0.1:$port/target\""
pipeline sqlite "type = \"sqlite\"
path = \"$work/target.db\""

# Seconds (wall) of one verify; its report kept in $work/report.
timed() {
    local t0 t1
    t0=$(date +%s.%N)
    SLUICE_LOG=warn "$sluice" verify "$@" >"$work/report" 2>&1 || true
    t1=$(date +%s.%N)
    python3 -c "print(f'{$t1 - $t0:.2f}')"
}
counts() { grep -E 'missing|checksum' "$work/report" | sed 's/  by key ranges.*//' | tr -s ' '; }
rate() { python3 -c "print(f'{$rows / $1 / 1e6:.2f}M')"; }
ratio() { python3 -c "print(f'{$2 / $1:.1f}x')"; }

change() {  # FROM TO: target rows changed by hand, scattered (picks FROM..TO of
            # one random order of the rows the plugin lets through); in both targets
    local ids
    ids=$(python3 -c "import random; r = random.Random(7); ids = r.sample(range(1, $rows + 1), 1000); ids = [i for i in ids if i % 97][$1:$2]; print(','.join(map(str, ids)))")
    psql -d target -c "UPDATE customers SET city = 'changed by hand' WHERE id IN ($ids)"
    python3 - "$work/target.db" "$ids" <<'PY'
import sqlite3, sys
db = sqlite3.connect(sys.argv[1])
db.execute(f"UPDATE customers SET city = 'changed by hand' WHERE id IN ({sys.argv[2]})")
db.commit()
PY
}

echo "machine: $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | xargs), $(nproc) cores, $(date -u +%F)"
for p in pg sqlite; do
    t0=$(date +%s)
    SLUICE_LOG=warn "$sluice" run "$work/$p.toml" --until-caught-up --no-progress >/dev/null 2>"$work/run.log" \
        || { cat "$work/run.log" >&2; exit 1; }
    echo "$p: synced $rows rows in $(( $(date +%s) - t0 )) s"
done
declare -A full first unchanged d10 d100
for p in pg sqlite; do
    full[$p]=$(timed "$work/$p.toml" --full); full_counts=$(counts)
    first[$p]=$(timed "$work/$p.toml")
    [ "$(counts)" = "$full_counts" ] || { echo "$p: the first verify by ranges and --full disagree" >&2; cat "$work/report" >&2; exit 1; }
    unchanged[$p]=$(timed "$work/$p.toml")
done
change 0 10
for p in pg sqlite; do
    d10[$p]=$(timed "$work/$p.toml"); c=$(counts); grep -q "different 10" "$work/report" || { cat "$work/report" >&2; exit 1; }
    timed "$work/$p.toml" --full >/dev/null
    [ "$(counts)" = "$c" ] || { echo "$p: ranges and --full disagree after 10 changes" >&2; exit 1; }
done
change 10 110
for p in pg sqlite; do
    d100[$p]=$(timed "$work/$p.toml"); grep -q "different 110" "$work/report" || { cat "$work/report" >&2; exit 1; }
done
echo
echo "| target | comparison | wall | rows/s | vs --full |"
echo "|---|---|---|---|---|"
for p in pg sqlite; do
    name=$([ $p = pg ] && echo PostgreSQL || echo SQLite)
    echo "| $name | \`--full\` (every row) | ${full[$p]} s | $(rate "${full[$p]}") | 1.0x |"
    echo "| $name | first by ranges (every range) | ${first[$p]} s | $(rate "${first[$p]}") | $(ratio "${first[$p]}" "${full[$p]}") |"
    echo "| $name | by ranges, nothing changed | ${unchanged[$p]} s | $(rate "${unchanged[$p]}") | $(ratio "${unchanged[$p]}" "${full[$p]}") |"
    echo "| $name | by ranges, 10 rows differ | ${d10[$p]} s | $(rate "${d10[$p]}") | $(ratio "${d10[$p]}" "${full[$p]}") |"
    echo "| $name | by ranges, 110 rows differ | ${d100[$p]} s | $(rate "${d100[$p]}") | $(ratio "${d100[$p]}" "${full[$p]}") |"
done
