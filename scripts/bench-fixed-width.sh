#!/usr/bin/env bash
# Speed of the fixed-width source (BENCHMARKS.md §16): the same 1M varied
# account records as a fixed-width file (header, details, trailer; Latin-1;
# zoned-decimal balances, dates, integers, accented names) and as a CSV
# file, each read by `sluice run` into a JSON-lines file, in the same run,
# alternating, best of 3. The CSV source hands every field on as text; the
# fixed-width source also types them (integer, exact decimal, date) and
# checks the trailer's count.
#
#   scripts/bench-fixed-width.sh [ROWS]          (default 1000000)
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
sluice=${CARGO_TARGET_DIR:-$root/target}/release/sluice
[ -x "$sluice" ] || { echo "build the release binary first: cargo build --release -p sluice-runtime" >&2; exit 1; }
rows=${1:-1000000}
work=$(mktemp -d /tmp/sluice-bench-fw.XXXXXX)
trap 'rm -rf "$work"' EXIT
python3 - "$work" "$rows" <<'PY'
import random, sys
work, rows = sys.argv[1], int(sys.argv[2])
r = random.Random(42)
names = ["Zoë Lefèvre", "Jürgen Groß", "Ana María Núñez", "O'Brien & Søn", "Émile Zola",
         "Åsa Öberg", "Chloé Dubois", "Nuño Peña", "Marie-Hélène Côté", "John Smith"]
zone_pos, zone_neg = "{ABCDEFGHI", "}JKLMNOPQR"
with open(f"{work}/accounts.dat", "w", encoding="latin-1", newline="") as fw, \
     open(f"{work}/accounts.csv", "w", encoding="latin-1", newline="") as cs:
    fw.write("H20241130BNK01\r\n")
    cs.write("account;branch;holder;balance;opened;status\r\n")
    for i in range(rows):
        holder = f"{r.choice(names)} {i % 9973}"[:24]
        cents = r.randrange(0, 10**10)
        neg = r.random() < 0.2
        digits = f"{cents:011d}"
        zoned = digits[:-1] + (zone_neg if neg else zone_pos)[int(digits[-1])]
        opened = "00000000" if i % 50 == 0 else f"{r.randrange(1990, 2025)}{r.randrange(1, 13):02d}{r.randrange(1, 29):02d}"
        status = "AC"[i % 7 == 0]
        branch = f"B{i % 400:03d}"
        fw.write(f"D{i:08d}{branch}{holder:<24}{zoned}{opened}{status}\r\n")
        amount = ("-" if neg and cents else "") + f"{cents // 100}.{cents % 100:02d}"
        cs.write(f"{i};{branch};{holder};{amount};{opened};{status}\r\n")
    fw.write(f"T{rows:09d}\r\n")
PY
cat >"$work/layout.toml" <<'TOML'
[[records]]
name = "header"
when = { start = 1, equals = "H" }
emit = false
fields = [{ name = "kind", length = 1 }, { name = "run_date", length = 8, type = "date" }, { name = "bank", length = 5 }]
[[records]]
name = "detail"
when = { start = 1, equals = "D" }
stream = "accounts"
fields = [
  { name = "kind", length = 1 },
  { name = "account", length = 8, type = "integer" },
  { name = "branch", length = 4 },
  { name = "holder", length = 24 },
  { name = "balance", length = 11, type = "decimal", scale = 2, sign = "overpunch" },
  { name = "opened", length = 8, type = "date", null_if = ["00000000"] },
  { name = "status", length = 1 },
]
[[records]]
name = "trailer"
when = { start = 1, equals = "T" }
emit = false
count = { field = "count", of = ["detail"] }
fields = [{ name = "kind", length = 1 }, { name = "count", length = 9, type = "integer" }]
TOML
cat >"$work/fw.toml" <<TOML
[source]
type = "fixed_width"
path = "accounts.dat"
encoding = "latin1"
layout = "layout.toml"
[sink]
type = "jsonl"
path = "out-fw.jsonl"
TOML
cat >"$work/csv.toml" <<TOML
[source]
type = "csv"
path = "accounts.csv"
delimiter = ";"
encoding = "latin1"
stream = "accounts"
[sink]
type = "jsonl"
path = "out-csv.jsonl"
TOML
secs() {  # PIPELINE: wall seconds of one run from the start
    local t0 t1
    t0=$(date +%s.%N)
    SLUICE_LOG=warn "$sluice" run "$work/$1.toml" --reset --no-progress >"$work/$1.out" 2>&1 \
        || { cat "$work/$1.out" >&2; exit 1; }
    t1=$(date +%s.%N)
    grep -q "written       $rows" "$work/$1.out" || { cat "$work/$1.out" >&2; exit 1; }
    python3 -c "print($t1 - $t0)"
}
echo "machine: $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | xargs), $(nproc) cores, $(date -u +%F)"
echo "files: fixed-width $(stat -c %s "$work/accounts.dat") bytes, CSV $(stat -c %s "$work/accounts.csv") bytes, $rows records"
best_fw=999999; best_csv=999999
for _ in 1 2 3; do
    fw=$(secs fw); csv=$(secs csv)
    best_fw=$(python3 -c "print(min($best_fw, $fw))"); best_csv=$(python3 -c "print(min($best_csv, $csv))")
done
python3 - "$rows" "$best_fw" "$best_csv" <<'PY'
import sys
rows, fw, csv = int(sys.argv[1]), float(sys.argv[2]), float(sys.argv[3])
print("| source | best of 3 | records/s | vs CSV |")
print("|---|---|---|---|")
print(f"| csv (text fields) | {csv:.2f} s | {rows / csv / 1e3:.0f}k | 1.00x |")
print(f"| fixed_width (typed, trailer checked) | {fw:.2f} s | {rows / fw / 1e3:.0f}k | {csv / fw:.2f}x |")
PY
