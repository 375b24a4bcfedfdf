#!/usr/bin/env bash
# A local PostgreSQL 15 server for the demo and the tests, on 127.0.0.1,
# with logical replication on. Each server lives in a directory of its own.
#
#   scripts/postgres.sh install              Debian packages (postgresql-15, libpq-dev) if missing
#   scripts/postgres.sh start DIR PORT       create the cluster in DIR if needed, start it on PORT
#   scripts/postgres.sh stop DIR [MODE]      stop it (MODE: fast (default), immediate)
#   scripts/postgres.sh restart DIR          restart it (same port)
#   scripts/postgres.sh tls DIR              TLS on: a CA (DIR/ca.crt) and a server
#                                            certificate for `localhost`; role
#                                            `tls_user` (password `tls`) may only use TLS
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

tls() {
    local dir=${1:?DIR}
    dir=$(cd "$dir" && pwd)
    local data="$dir/data"
    command -v openssl >/dev/null || die "openssl is needed to make the test certificates"
    openssl req -new -x509 -days 2 -nodes -subj "/CN=sluice test CA" \
        -keyout "$dir/ca.key" -out "$dir/ca.crt" 2>/dev/null
    openssl req -new -nodes -subj "/CN=localhost" \
        -keyout "$data/server.key" -out "$dir/server.csr" 2>/dev/null
    printf 'subjectAltName=DNS:localhost\n' >"$dir/san.ext"
    openssl x509 -req -in "$dir/server.csr" -days 2 -CA "$dir/ca.crt" -CAkey "$dir/ca.key" \
        -CAcreateserial -out "$data/server.crt" -extfile "$dir/san.ext" 2>/dev/null
    chmod 600 "$data/server.key"
    if [ "$(id -u)" = 0 ]; then chown postgres: "$data/server.key" "$data/server.crt"; fi
    printf "ssl = on\nssl_cert_file = 'server.crt'\nssl_key_file = 'server.key'\n" >>"$data/postgresql.conf"
    # tls_user may connect (and replicate) over TLS only.
    sed -i '1i hostnossl all tls_user 0.0.0.0/0 reject\nhostnossl replication tls_user 0.0.0.0/0 reject' "$data/pg_hba.conf"
    restart "$dir"
    local port
    port=$(sed -n 's/^port = //p' "$data/postgresql.conf" | tail -1)
    as_owner "$BIN/psql" -h "$dir" -p "$port" -U postgres -d postgres -q \
        -c "DO \$\$ BEGIN CREATE ROLE tls_user LOGIN SUPERUSER REPLICATION PASSWORD 'tls'; EXCEPTION WHEN duplicate_object THEN NULL; END \$\$" >/dev/null
}

cmd=${1:-}
shift || true
case "$cmd" in
    install) install ;;
    start) start "$@" ;;
    stop) stop "$@" ;;
    restart) restart "$@" ;;
    tls) tls "$@" ;;
    *) die "usage: $0 install | start DIR PORT | stop DIR [fast|immediate] | restart DIR | tls DIR" ;;
esac
