#!/usr/bin/env bash
# One command for the benchmarks: release build, synthetic corpus (made once), anchors and Cairn
# measured in the same run, ratios printed and written to Tools/bench/out/latest.md (store) and
# Tools/bench/out/serve-latest.md (node serving, against Orthanc and nginx, installed here).
#   Tools/bench/run.sh [--reps N] [--jobs N] [--index-scale N]     store, then serving
#   SERVE_ARGS="--sustain-seconds 0" Tools/bench/run.sh             skip the 10-minute load
#   Tools/bench/run.sh --serve-only                                 serving (and federation) only
#   FEDERATION_ARGS="--entries 100000" Tools/bench/run.sh           smaller manifest/hub run
#   Tools/bench/run.sh --mount-only                                 `cairn mount` only (root, /dev/fuse)
#   Tools/bench/run.sh --dicomweb-only                              DICOMweb against Orthanc's DICOMweb plugin
#   Tools/bench/run.sh --pixel-only                                 storage profiles against zstd, CharLS, OpenJPH
#   Tools/bench/run.sh --backends-only                              blobs in Ceph RGW against local files
#   Tools/bench/run.sh --index-only                                 the index in PostgreSQL against SQLite
#   Tools/bench/run.sh --gate-only                                  the de-identification gate's cost on ingest
set -euo pipefail
cd "$(dirname "$0")/../.."
Tools/install-deps.sh
swift build -c release --product cairn
swift build -c release --product cairn-bench
if [ ! -x .venv/bin/python ]; then python3 -m venv .venv; fi
.venv/bin/pip install -q --disable-pip-version-check -r Tools/requirements.txt
corpus=Tools/bench/out/corpus
if [ ! -f "$corpus.complete" ]; then
    rm -rf "$corpus"
    .venv/bin/python Tools/gen/make_corpus.py "$corpus" --ct 600 --mr 150 --dx 6 --jpeg 60 --seed 7
    touch "$corpus.complete"
fi
shared=../shared/dicom
# Serving is measured on copies of real vendor images (../shared/dicom-real, pydicom-data's WG04 set).
real_corpus=Tools/bench/out/real-corpus
if [ ! -f "$real_corpus.complete" ]; then
    rm -rf "$real_corpus"
    .venv/bin/python Tools/gen/make_real_corpus.py "$real_corpus" --real ../shared/dicom-real --seed 1
    touch "$real_corpus.complete"
fi
if [ "${1:-}" = "--mount-only" ]; then
    exec .venv/bin/python Tools/bench/mount_bench.py --corpus "$corpus" ${MOUNT_ARGS:-}
fi
if [ "${1:-}" = "--pixel-only" ]; then
    exec .venv/bin/python Tools/bench/pixel_bench.py ${PIXEL_ARGS:-}
fi
if [ "${1:-}" = "--backends-only" ]; then
    command -v wrk >/dev/null || DEBIAN_FRONTEND=noninteractive apt-get install -y -q wrk >/dev/null
    exec .venv/bin/python Tools/bench/backend_bench.py --corpus "$corpus" ${BACKEND_ARGS:-}
fi
if [ "${1:-}" = "--index-only" ]; then
    command -v wrk >/dev/null || DEBIAN_FRONTEND=noninteractive apt-get install -y -q wrk >/dev/null
    exec .venv/bin/python Tools/bench/index_bench.py --corpus "$corpus" ${INDEX_ARGS:-}
fi
if [ "${1:-}" = "--gate-only" ]; then
    exec .venv/bin/python Tools/bench/gate_bench.py --corpus "$corpus" ${GATE_ARGS:-}
fi
if [ "${1:-}" = "--dicomweb-only" ]; then
    command -v wrk >/dev/null || DEBIAN_FRONTEND=noninteractive apt-get install -y -q wrk >/dev/null
    exec .venv/bin/python Tools/bench/dicomweb_bench.py ${DICOMWEB_ARGS:-}
fi
if [ "${1:-}" = "--serve-only" ]; then shift; else
    .venv/bin/python Tools/bench/bench.py --corpus "$corpus" --shared "$shared" "$@"
fi
for tool in Orthanc nginx wrk; do
    command -v "$tool" >/dev/null || DEBIAN_FRONTEND=noninteractive apt-get install -y -q orthanc orthanc-dicomweb nginx-light wrk >/dev/null
done
.venv/bin/python Tools/bench/serve_bench.py --corpus "$real_corpus" ${SERVE_ARGS:-}
.venv/bin/python Tools/bench/federation_bench.py ${FEDERATION_ARGS:-}
.venv/bin/python Tools/bench/mount_bench.py --corpus "$corpus" ${MOUNT_ARGS:-}
.venv/bin/python Tools/bench/dicomweb_bench.py ${DICOMWEB_ARGS:-}
.venv/bin/python Tools/bench/pixel_bench.py ${PIXEL_ARGS:-}
.venv/bin/python Tools/bench/backend_bench.py --corpus "$corpus" ${BACKEND_ARGS:-}
.venv/bin/python Tools/bench/index_bench.py --corpus "$corpus" ${INDEX_ARGS:-}
.venv/bin/python Tools/bench/gate_bench.py --corpus "$corpus" ${GATE_ARGS:-}
