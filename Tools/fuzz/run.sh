#!/usr/bin/env bash
# Builds the DICOM parser fuzz target with libFuzzer and runs it for SECONDS (default 600),
# with a corpus seeded from pydicom's DICOM test files (installed into .venv from Tools/requirements.txt),
# the regression files and, if there is one, ../shared/dicom beside the repository. Crashers land in
# Tools/fuzz/crashers/; copy each into Tests/CairnDICOMTests/Regressions/ (the regression test replays
# every file there).
set -euo pipefail
cd "$(dirname "$0")"
seconds=${1:-600}
swift build -c debug -Xswiftc -sanitize=fuzzer -Xswiftc -use-ld=lld --product FuzzDicomParser \
    --scratch-path .build_fuzz
mkdir -p corpus crashers
# Copies the files under $1 smaller than 2 MB into corpus/, named by their SHA-1 as libFuzzer names
# its own (so equal files are one seed and same-named files in different folders are both kept).
seed_from() {
    find "$1" -type f -size -2M -print0 | while IFS= read -r -d '' f; do
        cp "$f" "corpus/$(sha1sum < "$f" | cut -d' ' -f1)"
    done
}
if [ -z "$(ls -A corpus)" ]; then
    python=../../.venv/bin/python
    [ -x "$python" ] || python=python3
    pydicom_files=$("$python" -c 'import pathlib, pydicom.data; print(pathlib.Path(pydicom.data.DATA_ROOT) / "test_files")') || {
        echo "no pydicom for the seed corpus: python3 -m venv .venv && .venv/bin/pip install -r Tools/requirements.txt" >&2
        exit 1
    }
    seed_from "$pydicom_files"
    seed_from ../../Tests/CairnDICOMTests/Regressions
    if [ -d ../../../shared/dicom ]; then seed_from ../../../shared/dicom; fi
    echo "seed corpus: $(ls corpus | wc -l) files"
fi
./.build_fuzz/debug/FuzzDicomParser corpus -max_total_time="$seconds" -max_len=262144 -rss_limit_mb=2048 \
    -timeout=10 -artifact_prefix=crashers/ -print_final_stats=1
