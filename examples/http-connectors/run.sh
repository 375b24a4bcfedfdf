#!/usr/bin/env bash
# Both example connectors against a local "legacy CRM" (tests/servers/
# legacy_crm.py): 100 000 customers behind a paged REST API that throttles
# (429) and fails (500) now and then, and a bulk import endpoint.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/../.." && pwd)
cd "$root"
export CARGO_TARGET_DIR=${CARGO_TARGET_DIR:-$root/target}
sluice="$CARGO_TARGET_DIR/release/sluice"
cargo build --release --locked -p sluice-runtime --bin sluice
./scripts/build-plugins.sh
"$sluice" plugin setup python
"$sluice" plugin build connectors/http-api-source
"$sluice" plugin build connectors/http-bulk-sink
"$sluice" plugin inspect connectors/http-api-source/build/http-api-source.wasm

export CRM_TOKEN=demo-token-42
python3 tests/servers/legacy_crm.py --port 18680 --records 100000 --token "$CRM_TOKEN" \
    --throttle-every 40 --fail-every 30 >/dev/null &
api=$!
python3 tests/servers/legacy_crm.py --port 18681 --token "$CRM_TOKEN" >/dev/null &
bulk=$!
trap 'kill $api $bulk 2>/dev/null || true' EXIT
sleep 1
rm -rf "$here/out" "$here/.sluice"
mkdir -p "$here/out"
echo
echo "== REST API -> validate -> SQLite"
"$sluice" run "$here/source-to-sqlite.toml"
echo
echo "== REST API -> bulk endpoint (Python sink connector)"
"$sluice" run "$here/api-to-bulk.toml"
echo
echo "the bulk endpoint holds: $(curl -s http://127.0.0.1:18681/bulk/stats)"
