#!/usr/bin/env bash
# A local MariaDB server for the MySQL source's demo and tests, on
# 127.0.0.1, with the binary log in ROW format (what change data capture
# reads). Each server lives in a directory of its own.
#
#   scripts/mariadb.sh install              Debian packages (mariadb-server, mariadb-client) if missing
#   scripts/mariadb.sh start DIR PORT       create the data directory in DIR if needed, start it on PORT
#   scripts/mariadb.sh stop DIR [MODE]      stop it (MODE: fast (default), kill: SIGKILL)
#   scripts/mariadb.sh restart DIR          restart it (same port)
#   scripts/mariadb.sh sql DIR [ARGS...]    the `mariadb` client as root on DIR's socket
#   scripts/mariadb.sh tls DIR              TLS on: a CA (DIR/ca.crt) and a server
#                                           certificate for 127.0.0.1 and localhost;
#                                           user `tls_user` (password `tls`) may only use TLS
#
# The administrator is `root` with password `root` (TCP); over the socket
# in DIR, root needs no password. Extra server settings go into
# DIR/extra.cnf before `start` (e.g. `binlog_format = STATEMENT` to test
# the source's preflight).
set -euo pipefail

die() { echo "mariadb.sh: $*" >&2; exit 1; }

install() {
    if ! command -v mariadbd >/dev/null && [ ! -x /usr/sbin/mariadbd ]; then
        echo "mariadb.sh: installing mariadb-server mariadb-client" >&2
        local sudo=()
        [ "$(id -u)" = 0 ] || sudo=(sudo)
        "${sudo[@]}" env DEBIAN_FRONTEND=noninteractive apt-get update -qq
        # The package's own service is not ours to use: stop it if it started.
        "${sudo[@]}" env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends \
            mariadb-server mariadb-client >/dev/null
        "${sudo[@]}" service mariadb stop >/dev/null 2>&1 || true
    fi
}

server_bin() {
    if [ -x /usr/sbin/mariadbd ]; then echo /usr/sbin/mariadbd; else command -v mariadbd; fi
}

start() {
    local dir=${1:?DIR} port=${2:?PORT}
    local bin
    bin=$(server_bin) || die "MariaDB is not installed: run \`scripts/mariadb.sh install\`"
    mkdir -p "$dir"
    dir=$(cd "$dir" && pwd)
    chmod 700 "$dir"
    local user=()
    [ "$(id -u)" = 0 ] && user=(--user=root)
    cat >"$dir/my.cnf" <<EOF
[mariadbd]
datadir = $dir/data
socket = $dir/mysql.sock
pid-file = $dir/mysql.pid
port = $port
bind-address = 127.0.0.1
log-error = $dir/server.log
log-bin = $dir/data/binlog
server-id = 1
binlog_format = ROW
binlog_row_image = FULL
innodb_buffer_pool_size = 128M
innodb_flush_log_at_trx_commit = 2
sync_binlog = 0
character-set-server = utf8mb4
collation-server = utf8mb4_general_ci
skip-name-resolve
max_connections = 200
EOF
    [ -f "$dir/extra.cnf" ] && cat "$dir/extra.cnf" >>"$dir/my.cnf"
    if [ ! -d "$dir/data/mysql" ]; then
        # Tried twice: under load the bootstrap server has been seen to
        # fail once and then succeed on a clean directory.
        local attempt
        for attempt in 1 2; do
            if mariadb-install-db --defaults-file="$dir/my.cnf" "${user[@]}" --auth-root-authentication-method=normal \
                --skip-test-db >"$dir/install.log" 2>&1; then
                break
            fi
            if [ "$attempt" = 2 ]; then
                cat "$dir/install.log" >&2
                tail -30 "$dir/server.log" >&2 2>/dev/null || true
                die "mariadb-install-db failed in $dir/data"
            fi
            echo "mariadb.sh: mariadb-install-db failed in $dir/data; trying once more:" >&2
            tail -5 "$dir/server.log" >&2 2>/dev/null || true
            rm -rf "$dir/data" "$dir/server.log"
        done
        local fresh=1
    fi
    "$bin" --defaults-file="$dir/my.cnf" "${user[@]}" >/dev/null 2>&1 &
    local i
    for i in $(seq 1 600); do
        if mariadb --socket="$dir/mysql.sock" -uroot -e 'SELECT 1' >/dev/null 2>&1; then break; fi
        [ "$i" = 600 ] && { tail -20 "$dir/server.log" >&2; die "the server in $dir did not start"; }
        sleep 0.1
    done
    if [ -n "${fresh:-}" ]; then
        mariadb --socket="$dir/mysql.sock" -uroot <<'EOF'
CREATE USER IF NOT EXISTS 'root'@'127.0.0.1';
ALTER USER 'root'@'127.0.0.1' IDENTIFIED BY 'root';
GRANT ALL PRIVILEGES ON *.* TO 'root'@'127.0.0.1' WITH GRANT OPTION;
FLUSH PRIVILEGES;
EOF
    fi
}

stop() {
    local dir=${1:?DIR} mode=${2:-fast}
    [ -f "$dir/mysql.pid" ] || return 0
    local pid
    pid=$(cat "$dir/mysql.pid")
    if [ "$mode" = kill ]; then
        kill -9 "$pid" 2>/dev/null || true
    else
        kill "$pid" 2>/dev/null || true
    fi
    local i
    for i in $(seq 1 600); do
        kill -0 "$pid" 2>/dev/null || break
        sleep 0.1
    done
    rm -f "$dir/mysql.pid"
}

restart() {
    local dir=${1:?DIR}
    dir=$(cd "$dir" && pwd)
    local port
    port=$(sed -n 's/^port = //p' "$dir/my.cnf" | tail -1)
    stop "$dir"
    start "$dir" "$port"
}

sql() {
    local dir=${1:?DIR}
    shift
    mariadb --socket="$dir/mysql.sock" -uroot "$@"
}

tls() {
    local dir=${1:?DIR}
    dir=$(cd "$dir" && pwd)
    command -v openssl >/dev/null || die "openssl is needed to make the test certificates"
    openssl req -new -x509 -days 2 -nodes -subj "/CN=sluice test CA" \
        -keyout "$dir/ca.key" -out "$dir/ca.crt" 2>/dev/null
    openssl req -new -nodes -subj "/CN=localhost" \
        -keyout "$dir/server.key" -out "$dir/server.csr" 2>/dev/null
    printf 'subjectAltName=DNS:localhost,IP:127.0.0.1\n' >"$dir/san.ext"
    openssl x509 -req -in "$dir/server.csr" -days 2 -CA "$dir/ca.crt" -CAkey "$dir/ca.key" \
        -CAcreateserial -out "$dir/server.crt" -extfile "$dir/san.ext" 2>/dev/null
    chmod 600 "$dir/server.key"
    printf 'ssl-ca = %s\nssl-cert = %s\nssl-key = %s\n' "$dir/ca.crt" "$dir/server.crt" "$dir/server.key" >>"$dir/extra.cnf"
    restart "$dir"
    sql "$dir" <<'EOF'
CREATE USER IF NOT EXISTS 'tls_user'@'127.0.0.1' IDENTIFIED BY 'tls' REQUIRE SSL;
GRANT ALL PRIVILEGES ON *.* TO 'tls_user'@'127.0.0.1';
EOF
}

cmd=${1:-}
shift || true
case "$cmd" in
    install) install ;;
    start) start "$@" ;;
    stop) stop "$@" ;;
    restart) restart "$@" ;;
    sql) sql "$@" ;;
    tls) tls "$@" ;;
    *) die "usage: $0 install | start DIR PORT | stop DIR [fast|kill] | restart DIR | sql DIR [ARGS...] | tls DIR" ;;
esac
