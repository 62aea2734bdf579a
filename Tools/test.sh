#!/usr/bin/env bash
# Runs every test: Swift unit tests (swift test), then the Python acceptance tests that drive the
# real `cairn` binary with stock tools and third-party clients. Installs what it needs first.
#   Tools/test.sh            all tests (starts a single-host Ceph and a private PostgreSQL for the
#                            scaled-out runs)
#   PYTEST_ARGS="-k faults" Tools/test.sh
set -euo pipefail
cd "$(dirname "$0")/.."

Tools/install-deps.sh

# A single-host Ceph (mon, mgr, memstore OSD, RGW) for the S3 blob store and a private
# PostgreSQL 15 for the shared index: running only while the tests that use them run (their
# daemons' CPU would otherwise load the timing-sensitive single-machine tests), stopped on exit.
ceph_dir="$PWD/.build/ceph"
# Under /tmp: the server runs as `postgres`, which may not reach into the clone (/root/...).
pg_dir=$(mktemp -d /tmp/cairn-test-pg.XXXXXX)
trap 'Tools/ceph.sh stop "$ceph_dir"; Tools/postgres.sh stop "$pg_dir"; rm -rf "$pg_dir"' EXIT
free_port() { python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'; }
start_engines() {
    local port
    port=$(free_port)
    echo "== starting Ceph RGW on 127.0.0.1:$port"
    Tools/ceph.sh start "$ceph_dir" "$port" > /dev/null
    # shellcheck source=/dev/null
    source "$ceph_dir/s3.env"
    port=$(free_port)
    echo "== starting PostgreSQL on 127.0.0.1:$port"
    Tools/postgres.sh start "$pg_dir" "$port" > /dev/null
    # shellcheck source=/dev/null
    source "$pg_dir/pg.env"
}
stop_engines() {
    Tools/ceph.sh stop "$ceph_dir"
    Tools/postgres.sh stop "$pg_dir"
}
export CAIRN_REQUIRE_S3=1 CAIRN_REQUIRE_PG=1
start_engines

echo "== swift build"
swift build
echo "== swift test"
swift test 2>&1 | tee .build/swift-test.log
grep -qE "Test run with [1-9][0-9]* tests? .*passed" .build/swift-test.log || { echo "swift test ran no tests"; exit 1; }

stop_engines

echo "== python acceptance tests"
if [ ! -x .venv/bin/python ]; then python3 -m venv .venv; fi
.venv/bin/pip install -q --disable-pip-version-check -r Tools/requirements.txt
env -u CAIRN_TEST_S3_ENDPOINT -u AWS_ACCESS_KEY_ID -u AWS_SECRET_ACCESS_KEY -u CAIRN_TEST_PG_URL \
    CAIRN_BIN="$PWD/.build/debug/cairn" .venv/bin/python -m pytest -q -p no:cacheprovider Tools/tests ${PYTEST_ARGS:-}

start_engines
# The scaled-out form: the index on PostgreSQL, the blobs in RGW, the second server of
# test_scaled_out.py in a data directory of its own (as on another host).
echo "== python acceptance tests, index in PostgreSQL, blobs in S3 (Ceph RGW)"
CAIRN_TEST_INDEX=postgres CAIRN_TEST_BLOB_STORE=s3 CAIRN_BIN="$PWD/.build/debug/cairn" .venv/bin/python -m pytest -q \
    -p no:cacheprovider -m "not local_files and not sqlite_index" Tools/tests/test_node_http.py Tools/tests/test_mount.py \
    Tools/tests/test_dicomweb.py Tools/tests/test_scaled_out.py Tools/tests/test_gate_rescan.py ${PYTEST_ARGS:-}
# Several servers on one host over SQLite, with the blobs in RGW.
echo "== python acceptance tests, index in SQLite, blobs in S3 (Ceph RGW)"
CAIRN_TEST_BLOB_STORE=s3 CAIRN_BIN="$PWD/.build/debug/cairn" .venv/bin/python -m pytest -q -p no:cacheprovider \
    -m "not local_files" Tools/tests/test_scaled_out.py ${PYTEST_ARGS:-}
