#!/usr/bin/env bash
# Builds the DICOM parser fuzz target with libFuzzer and runs it for SECONDS (default 600),
# with a corpus seeded from ../shared/dicom. Crashers land in Tools/fuzz/crashers/; copy each
# into Tests/CairnDICOMTests/Regressions/ (the regression test replays every file there).
set -euo pipefail
cd "$(dirname "$0")"
seconds=${1:-600}
swift build -c debug -Xswiftc -sanitize=fuzzer -Xswiftc -use-ld=lld --product FuzzDicomParser \
    --scratch-path .build_fuzz
mkdir -p corpus crashers
if [ -z "$(ls -A corpus)" ]; then
    find ../../../shared/dicom -type f -size -2M -exec cp {} corpus/ \; 2>/dev/null || true
    cp ../../Tests/CairnDICOMTests/Regressions/* corpus/ 2>/dev/null || true
fi
./.build_fuzz/debug/FuzzDicomParser corpus -max_total_time="$seconds" -max_len=262144 -rss_limit_mb=2048 \
    -timeout=10 -artifact_prefix=crashers/ -print_final_stats=1
