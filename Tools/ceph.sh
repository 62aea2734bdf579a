#!/usr/bin/env bash
# A real single-host Ceph for tests and benchmarks, no Docker: one mon, one mgr, one memstore OSD
# and radosgw (beast) on 127.0.0.1:PORT, with an S3 user. Daemons are started and stopped by pid.
#   Tools/ceph.sh start DIR PORT   prints the S3 settings as shell exports (also in DIR/s3.env)
#   Tools/ceph.sh stop DIR
# Needs Debian's ceph-mon ceph-osd ceph-mgr radosgw ceph-common uuid-runtime (Tools/install-deps.sh).
set -euo pipefail
command=${1:?start|stop}
D=$(realpath -m "${2:?DIR}")
export CEPH_CONF=$D/ceph.conf

stop() {
    for pidfile in "$D"/run/*.pid; do
        [ -e "$pidfile" ] || continue
        pid=$(cat "$pidfile")
        kill "$pid" 2>/dev/null || true
        for _ in $(seq 100); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
        kill -9 "$pid" 2>/dev/null || true
        rm -f "$pidfile"
    done
}

# Polls `$@` until it succeeds, up to $1 seconds.
wait_for() {
    local seconds=$1; shift
    for _ in $(seq $((seconds * 10))); do "$@" >/dev/null 2>&1 && return 0; sleep 0.1; done
    echo "ceph.sh: timed out after ${seconds}s waiting for: $*" >&2
    tail -20 "$D"/log/*.log >&2 || true
    return 1
}

case "$command" in
stop) stop; exit 0 ;;
start) ;;
*) echo "usage: $0 start DIR PORT | stop DIR" >&2; exit 2 ;;
esac

PORT=${3:?PORT}
stop
# The monitor listens on the standard ports (3300, 6789): one of these clusters per host.
if (exec 3<>/dev/tcp/127.0.0.1/6789) 2>/dev/null; then
    echo "ceph.sh: a Ceph monitor already listens on 127.0.0.1:6789 (stop that cluster first)" >&2
    exit 1
fi
rm -rf "$D"
mkdir -p "$D"/mon "$D"/osd "$D"/run "$D"/log
cat > "$CEPH_CONF" <<EOF
[global]
fsid = $(uuidgen)
auth cluster required = none
auth service required = none
auth client required = none
osd pool default size = 1
osd pool default min size = 1
osd crush chooseleaf type = 0
mon host = 127.0.0.1
mon allow pool delete = true
mon warn on pool no redundancy = false
run dir = $D/run
pid file = $D/run/\$name.pid
admin socket = $D/run/\$name.asok
log file = $D/log/\$name.log
[mon.a]
mon data = $D/mon
mon data avail crit = 0
[osd.0]
osd data = $D/osd
osd objectstore = memstore
memstore device bytes = 4294967296
[client.rgw.r]
rgw frontends = beast endpoint=127.0.0.1:$PORT
rgw data = $D/rgw
EOF

ceph-mon --id a --mkfs --keyring /dev/null
touch "$D"/mon/keyring
ceph-mon --id a
wait_for 30 ceph -s
id=$(ceph osd create)
ceph osd crush add "osd.$id" 1 root=default >/dev/null
ceph-osd --id "$id" --mkfs >/dev/null 2>&1
ceph-osd --id "$id"
ceph-mgr --id x
wait_for 60 sh -c 'ceph osd stat | grep -q "1 up"'
ceph auth get-or-create client.rgw.r osd 'allow rwx' mon 'allow rw' -o "$D"/rgw.keyring
mkdir -p "$D"/rgw
# Without the keyring and crc mode radosgw never authenticates ("get_initial_auth_request returned -13").
radosgw -n client.rgw.r -k "$D"/rgw.keyring --ms-mon-client-mode crc
wait_for 120 curl -sf "http://127.0.0.1:$PORT/"
KEY=cairn$(head -c 6 /dev/urandom | od -An -tx1 | tr -d ' \n')
SECRET=$(head -c 24 /dev/urandom | base64 | tr -d '/+=')
radosgw-admin user create --uid cairn --display-name cairn --access-key "$KEY" --secret-key "$SECRET" >/dev/null
cat > "$D"/s3.env <<EOF
export CAIRN_TEST_S3_ENDPOINT=http://127.0.0.1:$PORT
export AWS_ACCESS_KEY_ID=$KEY
export AWS_SECRET_ACCESS_KEY=$SECRET
EOF
cat "$D"/s3.env
