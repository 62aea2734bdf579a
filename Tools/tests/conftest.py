"""Shared fixtures: the cairn binary, fresh stores, generated data."""
import hashlib
import json
import os
import random
import subprocess
import sys
from contextlib import contextmanager
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
# Tools/manifest_reference.py, shared with the federation benchmark.
sys.path.insert(0, str(REPO / "Tools"))
SHARED_DICOM = Path(os.environ.get("CAIRN_SHARED_DICOM", REPO.parent / "shared" / "dicom"))


def cairn_binary() -> str:
    path = os.environ.get("CAIRN_BIN", str(REPO / ".build" / "debug" / "cairn"))
    if not os.path.exists(path):
        raise RuntimeError(f"{path} not built: run `swift build` (Tools/test.sh does)")
    return path


class Store:
    """A data directory and a way to run `cairn --data DIR ...` on it."""

    def __init__(self, root: Path):
        self.root = root

    def run(self, *args, check=True, input=None, timeout=600):
        proc = subprocess.run([cairn_binary(), *args, "--data", str(self.root)], capture_output=True,
                              input=input, timeout=timeout)
        if check and proc.returncode != 0:
            raise AssertionError(f"cairn {' '.join(map(str, args))} exited {proc.returncode}: "
                                 f"{proc.stderr.decode(errors='replace')}")
        return proc

    def json(self, *args):
        return json.loads(self.run(*args, "--json").stdout)

    def ndjson(self, *args):
        return [json.loads(line) for line in self.run(*args, "--json").stdout.splitlines() if line.strip()]

    def cat(self, digest, *args):
        return self.run("cat", digest, *args).stdout

    def path(self, digest):
        return self.run("path", digest).stdout.decode().strip()


@pytest.fixture
def store(tmp_path):
    s = Store(tmp_path / "data")
    s.run("init")
    return s


def sha256_digest(data: bytes) -> str:
    return "sha256:" + hashlib.sha256(data).hexdigest()


def image_like(size: int, seed: int) -> bytes:
    """Compressible bytes that look like 16-bit image samples with noise."""
    rng = random.Random(seed)
    words = [(1000 + (i % 512) + rng.randrange(16)) for i in range(size // 2 + 1)]
    return b"".join(w.to_bytes(2, "little") for w in words)[:size]


@pytest.fixture(scope="session")
def shared_dicom_files():
    files = sorted(p for p in SHARED_DICOM.rglob("*") if p.is_file())
    if not files:
        pytest.fail(f"no files under {SHARED_DICOM}")
    return files


@contextmanager
def tmpfs(path: Path, size: str):
    """A real filesystem of `size` at `path`, for a real ENOSPC (mounting needs root, as CI runs)."""
    path.mkdir()
    proc = subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={size}", "tmpfs", str(path)], capture_output=True)
    if proc.returncode != 0:
        pytest.skip(f"cannot mount tmpfs here: {proc.stderr.decode().strip()}")
    try:
        yield path
    finally:
        subprocess.run(["umount", "-l", str(path)], check=False)
