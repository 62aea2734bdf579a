"""Shared fixtures: the cairn binary, fresh stores, generated data."""
import functools
import hashlib
import json
import os
import random
import sqlite3
import subprocess
import sys
import time
from contextlib import contextmanager
from pathlib import Path

import pydicom
import pydicom.data
import pytest

from basic_profile import GENERATED_OPTIONS  # noqa: E402

REPO = Path(__file__).resolve().parents[2]
# Tools/manifest_reference.py, shared with the federation benchmark.
sys.path.insert(0, str(REPO / "Tools"))

# Real-world DICOM test files (big and little endian, implicit VR, JPEG, JPEG 2000, JPEG-LS, RLE,
# deflate, DICOMDIRs, truncated and malformed files) as the pydicom wheel installs them: no network,
# nothing beside the repository. (pydicom.data.get_testdata_files would also try to download the
# files pydicom keeps online, so the folder is read directly.)
PYDICOM_TEST_FILES = Path(pydicom.data.DATA_ROOT) / "test_files"
# Optionally more files: every file under CAIRN_SHARED_DICOM is added (a file with the same bytes as
# one already in the set is left out). Not needed, and not read unless set.
EXTRA_DICOM = Path(os.environ["CAIRN_SHARED_DICOM"]) if os.environ.get("CAIRN_SHARED_DICOM") else None

# What the generated de-identified files declare in (0012,0064) (Tools/tests/dicom_gen.py,
# Tools/gen/make_corpus.py): dates shifted, patient characteristics kept. A gated dataset made for
# them accepts these options; otherwise the gate refuses their dates, sex and age. Their kept text
# (kernel names, descriptions) is not reviewed: test_text_review.py tests that rule.
DEID_OPTIONS = ",".join(GENERATED_OPTIONS)
GATED = ("--deid-options", DEID_OPTIONS, "--no-text-review")

# One seed per run for every randomised test: CAIRN_TEST_SEED replays a run. Shown in the header
# and printed by seeded_rng, so a failing test's captured output says how to replay it.
TEST_SEED = int(os.environ.get("CAIRN_TEST_SEED") or time.time_ns() % 2**32)


# CAIRN_TEST_BLOB_STORE=s3 runs the suites against an S3 blob store (Tools/test.sh starts Ceph's
# RGW and sets CAIRN_TEST_S3_ENDPOINT and AWS_*): each test gets a bucket of its own through
# $CAIRN_CONFIG, which every cairn process it starts reads. Tests marked local_files read or damage
# blob files under the data directory, and are left out of that run.
BLOB_STORE = os.environ.get("CAIRN_TEST_BLOB_STORE", "file")
# CAIRN_TEST_INDEX=postgres puts each store's index in a database of its own on the PostgreSQL
# server CAIRN_TEST_PG_URL names (Tools/test.sh starts one with Tools/postgres.sh).
INDEX = os.environ.get("CAIRN_TEST_INDEX", "sqlite")
SCALED_OUT = BLOB_STORE == "s3" or INDEX == "postgres"


def pytest_configure(config):
    config.addinivalue_line("markers", "local_files: reads or damages blob files in the data directory")
    config.addinivalue_line("markers", "sqlite_index: reads or changes index.sqlite in the data directory")


@pytest.fixture(autouse=True)
def storage_config(tmp_path, monkeypatch):
    """The test's storage settings ($CAIRN_CONFIG): a bucket and/or an index database of its own;
    None for the embedded default (files and SQLite in the data directory)."""
    if not SCALED_OUT:
        yield None
        return
    path = tmp_path / "cairn-storage.json"
    settings = write_storage_config(path)
    monkeypatch.setenv("CAIRN_CONFIG", str(path))
    yield settings


def write_storage_config(path: Path) -> dict:
    """Writes a config naming a new bucket (one store per bucket) and/or a new, empty PostgreSQL
    database, and returns its settings."""
    settings = {}
    if BLOB_STORE == "s3":
        settings.update({"blob_store": f"s3://cairn-py-{random.getrandbits(48):012x}",
                         "s3_endpoint": os.environ["CAIRN_TEST_S3_ENDPOINT"], "s3_allow_http": True})
    if INDEX == "postgres":
        database = f"cairn_py_{random.getrandbits(48):012x}"
        server = os.environ["CAIRN_TEST_PG_URL"]
        subprocess.run(["psql", "-q", "-v", "ON_ERROR_STOP=1", f"{server}/postgres", "-c", f"CREATE DATABASE {database}"],
                       check=True, capture_output=True)
        settings.update({"index": f"{server}/{database}", "index_allow_plaintext": True})
    path.write_text(json.dumps(settings))
    return settings


# The test's $CAIRN_CONFIG serves its first store; a test's further stores get buckets and
# databases of their own.
_CLAIMED_CONFIGS = set()


def cairn_binary() -> str:
    path = os.environ.get("CAIRN_BIN", str(REPO / ".build" / "debug" / "cairn"))
    if not os.path.exists(path):
        raise RuntimeError(f"{path} not built: run `swift build` (Tools/test.sh does)")
    return path


class Store:
    """A data directory and a way to run `cairn --data DIR ...` on it."""

    def __init__(self, root: Path, config=None):
        """`config`: another store's storage settings, for a second host's data directory on the
        same shared index and bucket."""
        self.root = root
        self.config = config
        if SCALED_OUT and config is None:
            shared = os.environ.get("CAIRN_CONFIG")
            if shared and shared not in _CLAIMED_CONFIGS:
                _CLAIMED_CONFIGS.add(shared)
                self.config = shared
            else:
                self.config = str(root.parent / f"{root.name}-{random.getrandbits(32):08x}-storage.json")
                write_storage_config(Path(self.config))

    @property
    def env(self):
        """The environment for cairn processes on this store (its $CAIRN_CONFIG when scaled out)."""
        return {**os.environ, "CAIRN_CONFIG": self.config} if self.config else None

    def run(self, *args, check=True, input=None, timeout=600):
        proc = subprocess.run([cairn_binary(), *args, "--data", str(self.root)], capture_output=True,
                              input=input, timeout=timeout, env=self.env)
        if check and proc.returncode != 0:
            raise AssertionError(f"cairn {' '.join(map(str, args))} exited {proc.returncode}: "
                                 f"{proc.stderr.decode(errors='replace')}")
        return proc

    @property
    def index_url(self):
        """The store's PostgreSQL index (None: index.sqlite in the data directory)."""
        return json.loads(Path(self.config).read_text()).get("index") if self.config else None

    def index_sql(self, sql, params=()):
        """Runs one statement on the store's index, wherever it is, as a test that tampers with
        or inspects the index directly would; returns the rows (PostgreSQL's as text)."""
        if self.index_url is None:
            db = sqlite3.connect(self.root / "index.sqlite", timeout=30)
            try:
                with db:
                    return db.execute(sql, params).fetchall()
            finally:
                db.close()
        pieces = sql.split("?")
        assert len(pieces) == len(params) + 1, "one parameter per ?"
        literal = lambda v: str(v) if isinstance(v, int) else "'" + str(v).replace("'", "''") + "'"
        text = pieces[0] + "".join(literal(value) + rest for value, rest in zip(params, pieces[1:]))
        out = subprocess.run(["psql", "-qAt", "-v", "ON_ERROR_STOP=1", self.index_url, "-c", text],
                             check=True, capture_output=True, text=True).stdout
        return [tuple(line.split("|")) for line in out.splitlines()]

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
    """A fresh store whose `default` dataset also takes files that are not DICOM: most tests store
    arbitrary bytes there. The gate's own tests (test_gate.py) use datasets made for them, and
    check that `default` as `init` makes it refuses such files."""
    s = Store(tmp_path / "data")
    s.run("init")
    s.run("dataset", "create", *GATED, "default", "--allow-non-dicom")
    return s


def sha256_digest(data: bytes) -> str:
    return "sha256:" + hashlib.sha256(data).hexdigest()


def image_like(size: int, seed: int) -> bytes:
    """Compressible bytes that look like 16-bit image samples with noise."""
    rng = random.Random(seed)
    words = [(1000 + (i % 512) + rng.randrange(16)) for i in range(size // 2 + 1)]
    return b"".join(w.to_bytes(2, "little") for w in words)[:size]


def dicom_roots() -> list:
    """The folders the DICOM test files come from: pydicom's, then CAIRN_SHARED_DICOM if it exists."""
    return [PYDICOM_TEST_FILES] + ([EXTRA_DICOM] if EXTRA_DICOM is not None and EXTRA_DICOM.is_dir() else [])


@functools.lru_cache(maxsize=None)
def dicom_test_files() -> tuple:
    """Every file of pydicom's test data (176 in pydicom 3.0), then those of CAIRN_SHARED_DICOM whose
    bytes are not already in the set, each folder in sorted order. May be empty: callers fail then."""
    files, seen = [], set()
    for index, root in enumerate(dicom_roots()):
        found = sorted(p for p in root.rglob("*") if p.is_file() and "__pycache__" not in p.parts)
        digests = [hashlib.sha256(p.read_bytes()).digest() for p in found]
        # pydicom's own folder is taken whole (two of its files happen to have the same bytes).
        files += [p for p, d in zip(found, digests) if index == 0 or d not in seen]
        seen.update(digests)
    return tuple(files)


def dicom_file_id(path: Path) -> str:
    """A test id: the path under pydicom's folder, or `extra/` and the path under CAIRN_SHARED_DICOM."""
    if path.is_relative_to(PYDICOM_TEST_FILES):
        return str(path.relative_to(PYDICOM_TEST_FILES))
    return "extra/" + str(path.relative_to(EXTRA_DICOM))


@pytest.fixture(scope="session")
def dicom_files():
    files = list(dicom_test_files())
    if not files:
        pytest.fail(f"no DICOM test files under {', '.join(map(str, dicom_roots()))}")
    return files


@pytest.fixture(scope="session")
def shared_dicom_files(dicom_files):
    """The old name of dicom_files (the files no longer come from ../shared)."""
    return dicom_files


def pytest_report_header(config):
    extra = "not set" if EXTRA_DICOM is None else f"{EXTRA_DICOM}{'' if EXTRA_DICOM.is_dir() else ' (missing: ignored)'}"
    return [f"random seed: {TEST_SEED} (replay with CAIRN_TEST_SEED={TEST_SEED})",
            f"DICOM test files: {len(dicom_test_files())} from pydicom {pydicom.__version__} ({PYDICOM_TEST_FILES}); "
            f"CAIRN_SHARED_DICOM {extra}"]


def seeded_rng(label: str) -> random.Random:
    """A random.Random for one randomised test (or one stream within it), from the run's seed and
    `label`; prints the seed so that pytest shows it with a failure."""
    print(f"random seed {TEST_SEED} ({label}): replay with CAIRN_TEST_SEED={TEST_SEED}")
    return random.Random(f"{TEST_SEED}:{label}")


def wait_until(predicate, timeout: float, what: str, interval: float = 0.05):
    """Polls `predicate` until it returns something true, and returns that; after `timeout` seconds
    (checked once more at the deadline) fails naming `what`. For waiting on something to happen.
    Mind that a requests.Response with an error status is false: return something else."""
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() >= deadline:
            raise AssertionError(f"timed out after {timeout} s waiting for {what}")
        time.sleep(interval)


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
