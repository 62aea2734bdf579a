"""Faults the store must survive: full disks, damaged and deleted blob files, huge files."""
import hashlib
import os
import subprocess
import time

import pytest

from conftest import GATED, Store, cairn_binary, image_like, sha256_digest, tmpfs


@pytest.fixture
def small_disk(tmp_path):
    """A 24 MiB tmpfs: a real ENOSPC, not a simulated one."""
    with tmpfs(tmp_path / "disk", "24m") as mount:
        yield mount


def test_disk_full_leaves_no_partial_blob_and_keeps_earlier_data(small_disk, tmp_path):
    store = Store(small_disk / "data")
    store.run("init")
    store.run("dataset", "create", *GATED, "default", "--allow-non-dicom")
    early = tmp_path / "early.bin"
    early.write_bytes(image_like(2_000_000, 1))
    store.run("ingest", str(early))
    big = tmp_path / "big.bin"
    big.write_bytes(os.urandom(40 * 1024 * 1024))  # incompressible, larger than the disk
    proc = store.run("ingest", "--json", str(big), check=False)
    assert proc.returncode == 1
    assert b"disk full" in proc.stderr
    big_digest = sha256_digest(big.read_bytes())
    hexdigest = big_digest[7:]
    assert not (small_disk / "data" / "blobs" / "sha256" / hexdigest[:2] / hexdigest[2:4] / hexdigest).exists()
    assert os.listdir(small_disk / "data" / "tmp") == []
    assert big_digest not in {e["digest"] for e in store.ndjson("ls")}
    assert store.cat(sha256_digest(early.read_bytes())) == early.read_bytes()
    assert store.run("verify").returncode == 0
    # Many small files that fill the disk part way: each is either fully stored or not at all.
    src = tmp_path / "many"
    src.mkdir()
    for i in range(40):
        (src / f"f{i}.bin").write_bytes(os.urandom(1024 * 1024))
    proc = store.run("ingest", "--jobs", "2", "-v", str(src), check=False)
    assert proc.returncode == 1 and b"disk full" in proc.stderr
    reported = [line.split("\t")[0] for line in proc.stdout.decode().splitlines() if "\tstored\t" in line]
    assert 0 < len(reported) < 40
    listed = {e["digest"] for e in store.ndjson("ls")}
    assert set(reported) <= listed
    for digest in reported:
        assert sha256_digest(store.cat(digest)) == digest
    assert os.listdir(small_disk / "data" / "tmp") == []
    assert store.run("verify").returncode == 0


def test_a_flipped_byte_is_found_by_verify_and_refused_by_cat(store, tmp_path):
    data = image_like(1_500_000, 7)
    (tmp_path / "x.bin").write_bytes(data)
    store.run("ingest", "--codec", "zstd", str(tmp_path / "x.bin"))
    digest = sha256_digest(data)
    path = store.path(digest)
    os.chmod(path, 0o644)
    with open(path, "r+b") as f:
        f.seek(300_000)
        byte = f.read(1)
        f.seek(300_000)
        f.write(bytes([byte[0] ^ 0xFF]))
    proc = store.run("verify", check=False)
    assert proc.returncode == 1
    assert f"CORRUPT {digest}".encode() in proc.stdout
    cat = store.run("cat", digest, check=False)
    assert cat.returncode == 1
    assert digest[7:].encode() in cat.stderr and b"frame" in cat.stderr
    # A range before the damaged frame still reads; the damaged frame's bytes are never served.
    assert store.cat(digest, "--range", "0-99") == data[:100]
    assert store.json("stats")["corrupt"] == 1
    store.run("ingest", str(tmp_path / "x.bin"))  # re-ingesting the same bytes repairs the blob
    assert store.run("verify").returncode == 0
    assert store.cat(digest) == data


def test_a_blob_deleted_behind_the_index_is_reported_missing(store, tmp_path):
    (tmp_path / "x.bin").write_bytes(b"some bytes" * 1000)
    store.run("ingest", str(tmp_path / "x.bin"))
    digest = sha256_digest(b"some bytes" * 1000)
    os.unlink(store.path(digest))
    proc = store.run("verify", "--json", check=False)
    assert proc.returncode == 1
    report = __import__("json").loads(proc.stdout)
    assert report["problems"] == [{"digest": digest, "state": "missing", "detail": report["problems"][0]["detail"]}]
    assert "missing" in store.run("cat", digest, check=False).stderr.decode()


def test_verify_sample_checks_a_fraction(store, tmp_path):
    src = tmp_path / "src"
    src.mkdir()
    for i in range(200):
        (src / f"{i}.bin").write_bytes(f"file {i}".encode() * 50)
    store.run("ingest", str(src))
    checked = store.json("verify", "--sample", "25")["checked"]
    assert 20 <= checked <= 85
    assert store.json("verify")["checked"] == 200


def test_a_2_gib_file_streams_in_bounded_memory(store, tmp_path):
    """Ingest and read back a file past 2^31 bytes; peak RSS must stay far below the file size."""
    size = 2 * 1024**3 + 1024**2 + 3
    big = tmp_path / "big.bin"
    block = bytearray(image_like(1024 * 1024, 5))
    sha = hashlib.sha256()
    with open(big, "wb") as f:
        written = 0
        while written < size:
            block[:8] = written.to_bytes(8, "little")  # every MiB differs, so offsets matter
            chunk = bytes(block[: min(len(block), size - written)])
            f.write(chunk)
            sha.update(chunk)
            written += len(chunk)
    digest = "sha256:" + sha.hexdigest()

    def peak_rss_kib(args):
        # VmHWM of the exec'd image; ru_maxrss would also count the forked Python before exec.
        proc = subprocess.Popen([cairn_binary(), *args, "--data", str(store.root)], stdout=subprocess.PIPE,
                                stderr=subprocess.PIPE)
        peak = 0
        chunks = []
        os.set_blocking(proc.stdout.fileno(), False)
        while proc.poll() is None:
            try:
                with open(f"/proc/{proc.pid}/status") as status:
                    for line in status:
                        if line.startswith("VmHWM:"):
                            peak = max(peak, int(line.split()[1]))
            except (FileNotFoundError, ProcessLookupError):
                pass
            chunk = proc.stdout.read()
            if chunk:
                chunks.append(chunk)
            time.sleep(0.02)
        rest = proc.stdout.read()
        chunks.append(rest or b"")
        assert proc.returncode == 0, proc.stderr.read().decode()
        assert peak > 0
        return peak, b"".join(chunks)

    rss, out = peak_rss_kib(["ingest", "--json", "--jobs", "1", str(big)])
    assert digest.encode() not in out  # the summary is counts only
    assert rss < 120 * 1024, f"ingest peaked at {rss} KiB"
    big.unlink()
    offset = 2**31 - 10
    rss, tail = peak_rss_kib(["cat", digest, "--range", f"{offset}-{offset + 1024**2}"])
    assert rss < 120 * 1024
    expected = bytearray()
    for mib in range(offset // 2**20, (offset + 1024**2) // 2**20 + 1):
        chunk = bytearray(block)
        chunk[:8] = (mib * 2**20).to_bytes(8, "little")
        expected += chunk
    start = offset - (offset // 2**20) * 2**20
    assert tail == bytes(expected[start:start + 1024**2 + 1])
    assert store.cat(digest, "--range", "-3") == bytes(block[:3])
    assert store.json("verify")["clean"] is True
