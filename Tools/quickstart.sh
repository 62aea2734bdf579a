#!/usr/bin/env bash
# Quick start on a fresh Debian machine (as root, Swift 6.3 on PATH): installs what is missing,
# builds Cairn, initialises ./cairn-data, ingests a generated de-identified DICOM sample into the
# dataset `sample`, prints the store's statistics and a read token, then runs the node on
# 127.0.0.1:8700 until Ctrl-C. Safe to run again.
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
# The sample declares the Basic Profile options it uses (shifted dates, patient characteristics).
$cairn dataset create sample --title "Generated sample" \
    --deid-options retain-longitudinal-modified-dates,retain-patient-characteristics >/dev/null
# Kept free text (kernel names, descriptions) is stored only once reviewed: list it, read it (a
# provider deletes the lines that name anyone), accept it.
$cairn gate review --dataset sample "$sample" > cairn-sample-text.jsonl
$cairn gate review --dataset sample --accept-file cairn-sample-text.jsonl
$cairn ingest --dataset sample "$sample"
$cairn verify --sample 10
$cairn stats
token=$($cairn token issue --subject quickstart --datasets sample --ttl 8h 2>/dev/null)
digest=$($cairn ls --dataset sample --json | head -1 | sed 's/.*"digest":"\([^"]*\)".*/\1/')
echo
echo "A read token for dataset sample (8 h):"
echo "  export TOKEN=$token"
echo "Try, in another shell:"
echo "  curl -H \"Authorization: Bearer \$TOKEN\" http://127.0.0.1:8700/v1/datasets/sample/entries | head -2"
echo "  curl -H \"Authorization: Bearer \$TOKEN\" -r 0-131 http://127.0.0.1:8700/v1/blobs/$digest | xxd | head"
echo
exec $cairn node serve --node-id "${CAIRN_NODE_ID:-$(hostname)}"
