"""The store through the `cairn` CLI, checked with stock tools (zstd, lz4, sha256sum)."""
import hashlib
import os
import subprocess

import pytest

from conftest import GATED, cairn_binary, image_like, seeded_rng, sha256_digest


def stock_decode(codec, path):
    if codec == "zstd":
        return subprocess.run(["zstd", "-dc", path], capture_output=True, check=True).stdout
    if codec == "lz4":
        return subprocess.run(["lz4", "-dc", path], capture_output=True, check=True).stdout
    return open(path, "rb").read()


@pytest.mark.parametrize("codec", ["auto", "zstd", "lz4", "raw"])
def test_stock_tools_restore_every_dicom_test_file(store, dicom_files, codec):
    # The test files carry names and birth dates: only an ungated dataset takes them all.
    store.run("dataset", "create", "raw", "--deid-policy", "accept")
    summary = store.json("ingest", "--dataset", "raw", "--codec", codec, *map(str, dicom_files))
    assert summary["failed"] == 0
    assert summary["files"] == len(dicom_files)
    by_digest = {sha256_digest(p.read_bytes()): p for p in dicom_files}
    listed = store.ndjson("ls")
    assert {e["digest"] for e in listed} == set(by_digest)
    for entry in listed:
        path = store.path(entry["digest"])
        original = by_digest[entry["digest"]].read_bytes()
        assert stock_decode(entry["codec"], path) == original, entry
        if entry["codec"] == "raw":
            out = subprocess.run(["sha256sum", path], capture_output=True, check=True, text=True).stdout
            assert "sha256:" + out.split()[0] == entry["digest"]
        assert os.path.getsize(path) == entry["stored_size"]
        if codec in ("zstd", "lz4"):
            assert entry["codec"] == codec


def test_random_ranges_match_the_original(store, tmp_path):
    rng = seeded_rng("random ranges")
    files = []
    for i, size in enumerate([1, 1000, 262_143, 262_144, 262_145, 3_000_000]):
        p = tmp_path / f"f{i}.bin"
        p.write_bytes(image_like(size, i) if i % 2 else rng.randbytes(size))
        files.append(p)
    store.run("ingest", *map(str, files))
    for p in files:
        data = p.read_bytes()
        digest = sha256_digest(data)
        assert store.cat(digest) == data
        for _ in range(15):
            a = rng.randrange(len(data))
            b = rng.randrange(a, len(data))
            assert store.cat(digest, "--range", f"{a}-{b}") == data[a:b + 1]
        assert store.cat(digest, "--range", f"{len(data) - 1}-") == data[-1:]
        assert store.cat(digest, "--range", "-7") == data[-7:]
        bad = store.run("cat", digest, "--range", f"{len(data)}-{len(data) + 5}", check=False)
        assert bad.returncode == 2 and b"outside" in bad.stderr


def test_ingest_summary_counts_and_dedup(store, tmp_path):
    src = tmp_path / "src"
    src.mkdir()
    a, b = src / "a.bin", src / "b.bin"
    a.write_bytes(image_like(500_000, 1))
    b.write_bytes(os.urandom(200_000))
    first = store.json("ingest", str(a), str(b))
    assert (first["files"], first["ingested"], first["deduplicated"], first["failed"]) == (2, 2, 0, 0)
    assert first["bytes_in"] == 700_000
    assert 200_000 < first["bytes_stored"] < 700_000
    again = store.json("ingest", str(src))
    assert (again["ingested"], again["deduplicated"], again["bytes_stored"]) == (0, 2, 0)
    stats = store.json("stats")
    assert stats["blobs"] == 2 and stats["bytes"] == 700_000
    assert stats["by_codec"] == {"raw": 1, "zstd": 1}


def test_bad_paths_are_reported_and_the_rest_is_ingested(store, tmp_path):
    tree = tmp_path / "tree"
    (tree / "sub").mkdir(parents=True)
    (tree / "sub" / "ok.bin").write_bytes(b"hello")
    (tree / "empty.bin").write_bytes(b"")
    os.symlink(tree, tree / "sub" / "loop")  # a symlink loop back to the top
    os.mkfifo(tree / "fifo")
    proc = store.run("ingest", "--json", str(tree), str(tmp_path / "missing.dcm"), check=False)
    assert proc.returncode == 1
    assert b"missing.dcm" in proc.stderr and b"No such file" in proc.stderr
    summary = __import__("json").loads(proc.stdout)
    assert summary["ingested"] == 2 and summary["failed"] == 1
    assert store.cat(sha256_digest(b"")) == b""
    names = {e.get("name") for e in store.ndjson("ls", "--dataset", "default")}
    assert names == {"sub/ok.bin", "empty.bin"}


def test_usage_errors_exit_2(store, tmp_path):
    assert store.run("cat", "sha256:xyz", check=False).returncode == 2
    unknown = store.run("cat", "sha256:" + "0" * 64, check=False)
    assert unknown.returncode == 2 and b"not in this store" in unknown.stderr
    assert store.run("ingest", "--codec", "gzip", str(tmp_path), check=False).returncode == 2
    assert store.run("ingest", "--dataset", "nope", str(tmp_path), check=False).returncode == 2
    assert store.run("frobnicate", check=False).returncode == 2
    proc = subprocess.run([cairn_binary(), "stats",
                           "--data", str(tmp_path / "nothing-here")], capture_output=True)
    assert proc.returncode == 2 and b"cairn init" in proc.stderr


def test_gc_collects_nothing_that_a_dataset_holds(store, tmp_path):
    (tmp_path / "x.bin").write_bytes(image_like(10_000, 3))
    store.run("ingest", str(tmp_path / "x.bin"))
    report = store.json("gc", "--dry-run")
    assert report["unreferenced"] == [] and report["orphan_files"] == []
    assert store.json("gc")["bytes_freed"] == 0
    assert store.run("verify").returncode == 0


def test_a_second_dataset_shares_blobs(store, tmp_path):
    (tmp_path / "x.bin").write_bytes(b"shared bytes")
    store.run("dataset", "create", *GATED, "lung-ct", "--title", "Lung CT", "--allow-non-dicom")
    store.run("ingest", str(tmp_path / "x.bin"))
    second = store.json("ingest", "--dataset", "lung-ct", str(tmp_path / "x.bin"))
    assert second["deduplicated"] == 1
    assert [e["name"] for e in store.ndjson("ls", "--dataset", "lung-ct")] == ["x.bin"]
    assert store.json("stats")["dataset_entries"] == 2
