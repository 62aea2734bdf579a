#!/usr/bin/env bash
# A private PostgreSQL 15 (Debian's) for tests and benchmarks, no Docker: a cluster made by initdb
# in DIR (C collation, UTF-8), listening on 127.0.0.1:PORT only, trust authentication for its
# superuser `cairn`. Started and stopped by pid through pg_ctl.
#   Tools/postgres.sh start DIR PORT   prints CAIRN_TEST_PG_URL as a shell export (also in DIR/pg.env)
#   Tools/postgres.sh stop DIR
# Needs Debian's postgresql-15 (Tools/install-deps.sh). As root, the server runs as `postgres`,
# which must be able to reach DIR (a folder under /tmp, not under /root).
set -euo pipefail
command=${1:?start|stop}
D=$(realpath -m "${2:?DIR}")
BIN=/usr/lib/postgresql/15/bin

as_server_user() {
    if [ "$(id -u)" = 0 ]; then runuser -u postgres -- "$@"; else "$@"; fi
}

stop() {
    if [ -f "$D/data/postmaster.pid" ]; then
        as_server_user "$BIN/pg_ctl" -D "$D/data" -m fast -w -t 60 stop >/dev/null || true
    fi
}

case "$command" in
stop) stop; exit 0 ;;
start) ;;
*) echo "usage: $0 start DIR PORT | stop DIR" >&2; exit 2 ;;
esac

PORT=${3:?PORT}
stop
rm -rf "$D"
mkdir -p "$D"
if [ "$(id -u)" = 0 ]; then chown postgres "$D"; fi
as_server_user "$BIN/initdb" -D "$D/data" -A trust -U cairn --locale=C -E UTF8 >/dev/null
# -w: pg_ctl waits until the server accepts connections.
if ! as_server_user "$BIN/pg_ctl" -D "$D/data" -l "$D/log" -w -t 60 \
        -o "-p $PORT -k $D -c listen_addresses=127.0.0.1 -c max_connections=300" start >/dev/null; then
    tail -20 "$D/log" >&2 || true
    exit 1
fi
echo "export CAIRN_TEST_PG_URL=postgres://cairn@127.0.0.1:$PORT" | tee "$D/pg.env"
