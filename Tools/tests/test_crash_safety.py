"""kill -9 at random moments during a large parallel ingest, 30 times over.

After each kill the store is reopened: `verify` must be clean, `tmp/` empty, and every file that
the killed ingest reported as stored must read back byte-exact. Then the ingest is re-run to
completion, which must also leave a clean store.
"""
import hashlib
import os
import random
import signal
import subprocess
import time

import pytest

from conftest import GATED, Store, cairn_binary, image_like, seeded_rng

ROUNDS = int(os.environ.get("CAIRN_KILL_ROUNDS", "30"))


@pytest.fixture(scope="module")
def corpus(tmp_path_factory):
    root = tmp_path_factory.mktemp("kill-corpus")
    rng = seeded_rng("kill corpus")
    base = image_like(4 * 1024 * 1024, 1)
    files = {}
    for i in range(160):
        size = rng.choice([30_000, 300_000, 1_000_000, 2_500_000])
        start = rng.randrange(len(base) - size)
        data = i.to_bytes(4, "little") + (base[start:start + size] if i % 5 else rng.randbytes(size))
        path = root / f"dir{i % 7}" / f"file{i:03d}.bin"
        path.parent.mkdir(exist_ok=True)
        path.write_bytes(data)
        files[str(path)] = "sha256:" + hashlib.sha256(data).hexdigest()
    return root, files


def reported_lines(stdout: bytes):
    """Lines `digest<TAB>status<TAB>path` printed before the kill (a cut-off last line is ignored)."""
    for line in stdout.decode(errors="replace").split("\n")[:-1]:
        parts = line.split("\t")
        if len(parts) == 3:
            yield parts


def check_store(store: Store, expected: dict, rng: random.Random, sample: int = 12):
    """verify re-reads every blob and re-hashes its bytes, so a clean verify that covers every
    reported digest proves each reads back byte-exact; a sample also goes through `cat`."""
    verify = store.run("verify", "--json", check=False)
    assert verify.returncode == 0, verify.stdout + verify.stderr
    assert os.listdir(store.root / "tmp") == [], "recovery must clear tmp/"
    indexed = {e["digest"]: e["state"] for e in store.ndjson("ls")}
    missing = [d for d in expected if indexed.get(d) != "ok"]
    assert not missing, f"reported as stored but not in the index: {missing}"
    for digest in rng.sample(sorted(expected), min(sample, len(expected))):
        assert store.cat(digest) == open(expected[digest], "rb").read()


def test_kill_9_during_parallel_ingest(corpus, tmp_path):
    root, files = corpus
    rng = seeded_rng("kill moments")
    store = Store(tmp_path / "data")
    store.run("init")
    store.run("dataset", "create", *GATED, "default", "--allow-non-dicom")  # the corpus is not DICOM
    durable = {}
    kills = 0
    started = time.monotonic()
    store.run("ingest", "--jobs", "2", str(root))
    full_run = time.monotonic() - started
    for round_number in range(ROUNDS):
        if round_number % 6 == 0:  # now and then start over, so rounds write new blobs, not dedup hits
            subprocess.run(["rm", "-rf", str(store.root)], check=True)
            store.run("init")
            store.run("dataset", "create", *GATED, "default", "--allow-non-dicom")
            durable = {}
        proc = subprocess.Popen([cairn_binary(), "ingest", "--jobs", "2", "-v", "--codec",
                                 rng.choice(["auto", "zstd", "lz4"]), str(root), "--data", str(store.root)],
                                stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        time.sleep(rng.uniform(0.02, 0.9 * full_run))
        if proc.poll() is None:
            proc.send_signal(signal.SIGKILL)
            kills += 1
        stdout, _ = proc.communicate()
        for digest, status, path in reported_lines(stdout):
            assert files[path] == digest
            durable[digest] = path
        check_store(store, durable, rng)
    assert kills >= ROUNDS // 2, f"only {kills} of {ROUNDS} rounds were killed mid-ingest"
    summary = store.json("ingest", "--jobs", "2", str(root))
    assert summary["failed"] == 0
    check_store(store, {d: p for p, d in files.items()}, rng, sample=len(files))
