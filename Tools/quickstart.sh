#!/usr/bin/env bash
# Quick start on a fresh Debian machine (as root, Swift 6.3 on PATH): installs what is missing,
# builds Cairn, initialises ./cairn-data, ingests a generated de-identified DICOM sample and prints
# the store's statistics. Safe to run again.
set -euo pipefail
cd "$(dirname "$0")/.."
Tools/install-deps.sh
swift build -c release --product cairn
cairn=.build/release/cairn
if [ ! -x .venv/bin/python ]; then python3 -m venv .venv; fi
.venv/bin/pip install -q --disable-pip-version-check -r Tools/requirements.txt
sample=cairn-sample
if [ ! -d "$sample" ]; then
    .venv/bin/python Tools/gen/make_corpus.py "$sample" --ct 120 --mr 40 --dx 2 --jpeg 20 --seed 3
fi
export CAIRN_DATA="${CAIRN_DATA:-$PWD/cairn-data}"
$cairn init
$cairn ingest "$sample"
$cairn verify --sample 10
$cairn stats
echo
echo "Try: $cairn ls | head; $cairn cat <digest> --range 0-131 | xxd | head"
