#!/usr/bin/env bash
# Runs every test: Swift unit tests (swift test), then the Python acceptance tests that drive the
# real `cairn` binary with stock tools and third-party clients. Installs what it needs first.
#   Tools/test.sh            all tests
#   PYTEST_ARGS="-k faults" Tools/test.sh
set -euo pipefail
cd "$(dirname "$0")/.."

Tools/install-deps.sh

echo "== swift build"
swift build
echo "== swift test"
swift test 2>&1 | tee .build/swift-test.log
grep -qE "Test run with [1-9][0-9]* tests? .*passed" .build/swift-test.log || { echo "swift test ran no tests"; exit 1; }

echo "== python acceptance tests"
if [ ! -x .venv/bin/python ]; then python3 -m venv .venv; fi
.venv/bin/pip install -q --disable-pip-version-check -r Tools/requirements.txt
CAIRN_BIN="$PWD/.build/debug/cairn" .venv/bin/python -m pytest -q -p no:cacheprovider Tools/tests ${PYTEST_ARGS:-}
