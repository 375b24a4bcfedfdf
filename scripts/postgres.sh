#!/usr/bin/env bash
# A local PostgreSQL 15 server for the demo and the tests, on 127.0.0.1,
# with logical replication on. Each server lives in a directory of its own.
#
#   scripts/postgres.sh install              Debian packages (postgresql-15, libpq-dev) if missing
#   scripts/postgres.sh start DIR PORT       create the cluster in DIR if needed, start it on PORT
#   scripts/postgres.sh stop DIR [MODE]      stop it (MODE: fast (default), immediate)
#   scripts/postgres.sh restart DIR          restart it (same port)
#
# The superuser is `postgres` with password `postgres` (TCP, scram-sha-256).
# PostgreSQL refuses to run as root: as root the server runs as the
# `postgres` user, which owns DIR.
set -euo pipefail

PG_VERSION=15
BIN=/usr/lib/postgresql/$PG_VERSION/bin

die() { echo "postgres.sh: $*" >&2; exit 1; }

as_owner() {
    if [ "$(id -u)" = 0 ]; then
        runuser -u postgres -- "$@"
    else
        "$@"
    fi
}

install() {
    local missing=()
    [ -x "$BIN/postgres" ] || missing+=("postgresql-$PG_VERSION")
    [ -f /usr/include/postgresql/libpq-fe.h ] || missing+=(libpq-dev)
    command -v pkg-config >/dev/null || missing+=(pkg-config)
    if [ ${#missing[@]} -gt 0 ]; then
        echo "postgres.sh: installing ${missing[*]}" >&2
        local sudo=()
        [ "$(id -u)" = 0 ] || sudo=(sudo)
        "${sudo[@]}" env DEBIAN_FRONTEND=noninteractive apt-get update -qq
        "${sudo[@]}" env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
    fi
    # Debian starts a cluster of its own on 5432; it is not ours to use.
}

start() {
    local dir=${1:?DIR} port=${2:?PORT}
    [ -x "$BIN/postgres" ] || die "PostgreSQL $PG_VERSION is not installed: run \`scripts/postgres.sh install\`"
    mkdir -p "$dir"
    dir=$(cd "$dir" && pwd)
    if [ "$(id -u)" = 0 ]; then chown postgres: "$dir"; fi
    chmod 700 "$dir"
    if [ ! -f "$dir/data/PG_VERSION" ]; then
        local pw="$dir/.pw"
        echo postgres >"$pw"
        if [ "$(id -u)" = 0 ]; then chown postgres: "$pw"; fi
        as_owner "$BIN/initdb" -D "$dir/data" -U postgres --pwfile="$pw" \
            --auth-local=trust --auth-host=scram-sha-256 -E UTF8 --locale=C.UTF-8 >"$dir/initdb.log" 2>&1 \
            || { cat "$dir/initdb.log" >&2; die "initdb failed in $dir/data"; }
        rm -f "$pw"
        cat >>"$dir/data/postgresql.conf" <<EOF
listen_addresses = '127.0.0.1'
port = $port
unix_socket_directories = '$dir'
wal_level = logical
max_wal_senders = 20
max_replication_slots = 20
wal_sender_timeout = 60s
max_connections = 100
shared_buffers = 128MB
fsync = off
synchronous_commit = off
full_page_writes = off
EOF
        # Replication connections (CDC) from loopback, with a password.
        echo "host replication all 127.0.0.1/32 scram-sha-256" >>"$dir/data/pg_hba.conf"
    fi
    as_owner "$BIN/pg_ctl" -D "$dir/data" -l "$dir/server.log" -w -t 60 start >/dev/null \
        || { tail -20 "$dir/server.log" >&2; die "the server in $dir did not start"; }
}

stop() {
    local dir=${1:?DIR} mode=${2:-fast}
    [ -f "$dir/data/postmaster.pid" ] || return 0
    as_owner "$BIN/pg_ctl" -D "$dir/data" -m "$mode" -w -t 60 stop >/dev/null || true
}

restart() {
    local dir=${1:?DIR}
    as_owner "$BIN/pg_ctl" -D "$dir/data" -l "$dir/server.log" -m fast -w -t 60 restart >/dev/null \
        || { tail -20 "$dir/server.log" >&2; die "the server in $dir did not restart"; }
}

cmd=${1:-}
shift || true
case "$cmd" in
    install) install ;;
    start) start "$@" ;;
    stop) stop "$@" ;;
    restart) restart "$@" ;;
    *) die "usage: $0 install | start DIR PORT | stop DIR [fast|immediate] | restart DIR" ;;
esac
