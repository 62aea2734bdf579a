"""Malformed DICOM through the CLI: each hostile file gets a clear error (exit 2, naming the
problem) or a dump, never a crash, in bounded time and memory."""
import subprocess
import time
from pathlib import Path

import pytest

from conftest import REPO, cairn_binary

REGRESSIONS = REPO / "Tests" / "CairnDICOMTests" / "Regressions"
HOSTILE = sorted(REGRESSIONS.iterdir()) if REGRESSIONS.is_dir() else []


# No files at all is one failing case, not an empty parameter set (which pytest skips).
@pytest.mark.parametrize("path", HOSTILE or [pytest.param(None, id="no-files")], ids=lambda p: p.name)
def test_dump_fails_cleanly_or_succeeds(path):
    assert path is not None, f"no files in {REGRESSIONS}"
    started = time.monotonic()
    proc = subprocess.run(["prlimit", "--as=4000000000", cairn_binary(), "dicom", "dump", "--json", str(path)],
                          capture_output=True, timeout=30)
    assert time.monotonic() - started < 10
    assert proc.returncode in (0, 2), proc.stderr
    if proc.returncode == 2:
        message = proc.stderr.decode()
        assert message.startswith("cairn: ") and str(path) in message
        assert any(word in message for word in ("offset", "not a DICOM", "truncated", "deflated", "nested"))


def test_hostile_files_are_refused_by_a_gated_dataset_and_stored_by_an_open_one(store):
    assert HOSTILE, f"no files in {REGRESSIONS}"
    proc = store.run("ingest", "--json", *map(str, HOSTILE), check=False)
    assert proc.returncode == 1
    assert b"cannot be checked for identifiers" in proc.stderr
    store.run("dataset", "create", "open", "--deid-policy", "accept")
    summary = store.json("ingest", "--dataset", "open", *map(str, HOSTILE))
    assert summary["failed"] == 0 and summary["ingested"] + summary["deduplicated"] == len(HOSTILE)
    assert store.run("verify").returncode == 0
