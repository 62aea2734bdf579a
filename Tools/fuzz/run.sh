#!/usr/bin/env bash
# Builds one libFuzzer target and runs it for SECONDS (default 600):
#   Tools/fuzz/run.sh [SECONDS] [TARGET]
# TARGET: FuzzDicomParser (default), FuzzDeidGate, FuzzByteRanges, FuzzTokens, FuzzHubIntake,
# FuzzEntriesQuery, FuzzDicomWeb, FuzzBlobFrame. Each keeps its corpus in corpus-TARGET/ (seeded when empty: the DICOM parser
# from pydicom's test files in .venv, the regression files and ../shared/dicom if present; the
# others from make_seeds.py) and its crashers in crashers-TARGET/. Copy a DICOM crasher into
# Tests/CairnDICOMTests/Regressions/ (the regression test replays every file there); for the
# others, a test in the module's test target that replays the input.
set -euo pipefail
cd "$(dirname "$0")"
seconds=${1:-600}
target=${2:-FuzzDicomParser}
python=../../.venv/bin/python
[ -x "$python" ] || python=python3
swift build -c debug -Xswiftc -sanitize=fuzzer -Xswiftc -use-ld=lld --product "$target" --scratch-path .build_fuzz
corpus="corpus-$target" crashers="crashers-$target"
mkdir -p "$corpus" "$crashers"
# Copies the files under $1 smaller than 2 MB into the corpus, named by their SHA-1 as libFuzzer
# names its own (so equal files are one seed and same-named files in different folders are both kept).
seed_from() {
    find "$1" -type f -size -2M -print0 | while IFS= read -r -d '' f; do
        cp "$f" "$corpus/$(sha1sum < "$f" | cut -d' ' -f1)"
    done
}
if [ -z "$(ls -A "$corpus")" ]; then
    if [ "$target" = FuzzDicomParser ]; then
        pydicom_files=$("$python" -c 'import pathlib, pydicom.data; print(pathlib.Path(pydicom.data.DATA_ROOT) / "test_files")') || {
            echo "no pydicom for the seed corpus: python3 -m venv .venv && .venv/bin/pip install -r Tools/requirements.txt" >&2
            exit 1
        }
        seed_from "$pydicom_files"
        seed_from ../../Tests/CairnDICOMTests/Regressions
        if [ -d ../../../shared/dicom ]; then seed_from ../../../shared/dicom; fi
    elif [ "$target" = FuzzBlobFrame ]; then
        # Blob files as Cairn writes them: pydicom's test files under every profile and plain codec.
        (cd ../.. && swift build --product cairn)
        pydicom_files=$("$python" -c 'import pathlib, pydicom.data; print(pathlib.Path(pydicom.data.DATA_ROOT) / "test_files")')
        seeds=$(mktemp -d)
        for how in "--profile archive" "--profile balanced" "--profile fast" "--codec zstd" "--codec lz4"; do
            store="$seeds/$(echo $how | tr -d ' -')"
            ../../.build/debug/cairn init --data "$store" >/dev/null
            ../../.build/debug/cairn dataset create s --deid-policy accept --data "$store" >/dev/null
            ../../.build/debug/cairn ingest $how --dataset s --data "$store" "$pydicom_files" >/dev/null
            seed_from "$store/blobs"
        done
        rm -rf "$seeds"
    else
        "$python" make_seeds.py "$target" "$corpus"
    fi
    echo "seed corpus: $(ls "$corpus" | wc -l) files"
fi
./.build_fuzz/debug/"$target" "$corpus" -max_total_time="$seconds" -max_len=262144 -rss_limit_mb=2048 \
    -timeout=10 -artifact_prefix="$crashers/" -print_final_stats=1
