#!/usr/bin/env bash
# One command for the store benchmarks: release build, synthetic corpus (made once), anchors and
# Cairn measured in the same run, ratios printed and written to Tools/bench/out/latest.md.
#   Tools/bench/run.sh [--reps N] [--jobs N]
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
exec .venv/bin/python Tools/bench/bench.py --corpus "$corpus" --shared "$shared" "$@"
