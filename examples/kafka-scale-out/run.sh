#!/usr/bin/env bash
# The scale-out example, end to end: a local broker, 200 000 orders in a
# 6-partition topic, three workers in one consumer group (one is killed with
# kill -9 half-way and a fourth takes its partitions), then a count of what
# arrived. ORDERS=50000 ./examples/kafka-scale-out/run.sh for fewer.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/../.." && pwd)
orders=${ORDERS:-200000}
port=${PORT:-19092}
broker_dir=${BROKER_DIR:-$here/out/broker}
export BROKERS=127.0.0.1:$port

"$root/scripts/postgres.sh" install   # libpq: the binary links it
"$root/scripts/kafka.sh" install
"$root/scripts/build-plugins.sh"
(cd "$root" && cargo build --release --locked -p sluice-runtime)
sluice=${CARGO_TARGET_DIR:-$root/target}/release/sluice

cd "$here"
"$root/scripts/kafka.sh" stop "$broker_dir"
rm -rf out data && mkdir -p out data
"$root/scripts/kafka.sh" start "$broker_dir" "$port"
"$root/scripts/kafka.sh" topic "$port" orders 6
"$root/scripts/kafka.sh" topic "$port" clean 6
"$root/scripts/kafka.sh" topic "$port" dead 1
awk -v n="$orders" 'BEGIN { for (i = 1; i <= n; i++) {
    email = (i % 1000 == 0) ? "" : sprintf(",\"email\":\"buyer%d@shop.example\"", i % 7919);
    printf("{\"order_id\":\"%d\",\"customer\":\"c%d\",\"amount\":%d.%02d%s}\n", i, i % 5000, i % 300, i % 100, email) } }' \
    >data/orders.jsonl
echo "== loading $orders orders into the topic"
"$sluice" run load.toml --no-progress --reset 2>&1 | grep -E "written|throughput"

echo "== three workers"
pids=()
for w in 1 2 3; do
    WORKER_STATE=out/worker$w "$sluice" run worker.toml --no-progress --summary-json out/worker$w.json \
        >out/worker$w.log 2>&1 &
    pids+=($!)
done
sleep 8
echo "== kill -9 worker 2; worker 4 joins"
kill -9 "${pids[1]}"
WORKER_STATE=out/worker4 "$sluice" run worker.toml --no-progress --summary-json out/worker4.json \
    >out/worker4.log 2>&1 &
pids+=($!)

echo "== collecting the clean topic into out/orders.db"
for _ in $(seq 60); do
    sleep 2
    "$sluice" run collect.toml --no-progress --until-caught-up >out/collect.log 2>&1
    # What the target holds (a re-delivered order is one row, so summing
    # the runs' "written" would count it twice).
    total=$(python3 -c 'import sqlite3, sys
try:
    print(sqlite3.connect(sys.argv[1]).execute("SELECT count(*) FROM orders").fetchone()[0])
except sqlite3.Error:
    print(0)' out/orders.db)
    want=$(( orders - orders / 1000 ))
    echo "   $total of $want valid orders collected"
    [ "$total" -ge "$want" ] && break
done
for i in 0 2 3; do kill -TERM "${pids[$i]}" 2>/dev/null || true; done
wait 2>/dev/null || true
echo "== what each worker wrote"
for w in 1 3 4; do
    echo "   worker $w: $(grep -oE '"written": *[0-9]+' out/worker$w.json 2>/dev/null || echo 'no summary')"
done
echo "   worker 2: killed with kill -9 (its uncommitted batches were replayed by the others)"
"$root/scripts/kafka.sh" stop "$broker_dir"
echo "Rejected orders (no email) went to the \`dead\` topic with the reason in headers."
