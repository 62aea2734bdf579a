"""Storage profiles end to end: every DICOM test file under every profile comes back byte-exact
through `cairn cat`, HTTP ranges and the independent reference decoder (Tools/blob_decode.py);
`cairn recompress` rewrites a store in place, resumes, and survives SIGKILL."""
import importlib.util
import os
import signal
import subprocess
import sys

import pytest

from conftest import REPO, cairn_binary, seeded_rng, sha256_digest, wait_until
from node import Node

spec = importlib.util.spec_from_file_location("blob_decode", REPO / "Tools" / "blob_decode.py")
blob_decode = importlib.util.module_from_spec(spec)
spec.loader.exec_module(blob_decode)

PROFILES = ["archive", "balanced", "fast"]


def ingest_all(store, files, *args):
    store.run("dataset", "create", "ct", "--deid-policy", "accept")
    summary = store.json("ingest", "--dataset", "ct", *args, *map(str, files))
    assert summary["failed"] == 0
    return {sha256_digest(p.read_bytes()): p for p in files}


@pytest.mark.parametrize("profile", PROFILES)
def test_every_dicom_file_round_trips_under_every_profile(store, dicom_files, profile):
    by_digest = ingest_all(store, dicom_files, "--profile", profile)
    listed = store.ndjson("ls")
    assert {e["digest"] for e in listed} == set(by_digest)
    pixel_blobs = 0
    for entry in listed:
        original = by_digest[entry["digest"]].read_bytes()
        assert store.cat(entry["digest"]) == original, entry
        path = store.path(entry["digest"])
        assert os.path.getsize(path) == entry["stored_size"]
        # Without Cairn: the reference decoder checks every frame and the digest itself.
        with open(path, "rb") as f:
            assert blob_decode.decode(f.read()) == original, entry
        pixel_blobs += entry["codec"] == "pixel"
    # pydicom's test files hold native 8- and 16-bit, signed, RGB and multi-frame images.
    assert pixel_blobs >= 30, f"only {pixel_blobs} blobs went through the pixel stage"


def test_reference_decoder_command_checks_the_digest(store, dicom_files, tmp_path):
    ct = next(p for p in dicom_files if p.name == "CT_small.dcm")
    by_digest = ingest_all(store, [ct], "--profile", "archive")
    digest = next(iter(by_digest))
    path = store.path(digest)
    out = tmp_path / "restored.dcm"
    subprocess.run([sys.executable, REPO / "Tools" / "blob_decode.py", path, "-o", out], check=True)
    assert out.read_bytes() == ct.read_bytes()
    damaged = tmp_path / digest.removeprefix("sha256:")
    data = bytearray(open(path, "rb").read())
    data[len(data) // 2] ^= 0x40
    damaged.write_bytes(data)
    proc = subprocess.run([sys.executable, REPO / "Tools" / "blob_decode.py", damaged, "-o", tmp_path / "x"],
                          capture_output=True, text=True)
    assert proc.returncode != 0 and damaged.name in proc.stderr


def test_stock_zstd_refuses_pixel_blobs_rather_than_writing_wrong_bytes(store, dicom_files):
    ct = next(p for p in dicom_files if p.name == "CT_small.dcm")
    digest = next(iter(ingest_all(store, [ct], "--profile", "balanced")))
    assert store.ndjson("ls")[0]["codec"] == "pixel"
    proc = subprocess.run(["zstd", "-dc", store.path(digest)], capture_output=True)
    assert proc.returncode != 0


@pytest.mark.parametrize("profile", PROFILES)
def test_node_serves_exact_ranges_of_pixel_blobs(store, dicom_files, profile):
    native = [p for p in dicom_files if p.stat().st_size > 100_000][:12]
    by_digest = ingest_all(store, native, "--profile", profile)
    rng = seeded_rng(f"pixel ranges {profile}")
    node = Node(store)
    try:
        token = node.token(datasets="ct")
        for digest, path in by_digest.items():
            original = path.read_bytes()
            whole = node.get(f"/v1/blobs/{digest}", token)
            assert whole.status_code == 200 and whole.content == original
            for _ in range(10):
                start = rng.randrange(len(original))
                end = rng.randrange(start, min(len(original), start + 200_000))
                got = node.get(f"/v1/blobs/{digest}", token, headers={"Range": f"bytes={start}-{end}"})
                assert got.status_code == 206 and got.content == original[start:end + 1], (path.name, start, end)
    finally:
        node.stop()


def test_recompress_rewrites_in_place_and_resumes(store, dicom_files):
    by_digest = ingest_all(store, dicom_files, "--codec", "zstd")
    before = sum(e["stored_size"] for e in store.ndjson("ls"))
    report = store.json("recompress", "--profile", "archive", "--dataset", "ct")
    assert report["failed"] == 0 and report["rewritten"] > 100
    assert report["stored_after"] < report["stored_before"]
    after = sum(e["stored_size"] for e in store.ndjson("ls"))
    assert after < before
    assert store.json("recompress", "--profile", "archive")["rewritten"] == 0, "a second run has nothing left to do"
    verify = store.json("verify")
    assert verify["clean"] and not verify["problems"], verify
    for digest, path in by_digest.items():
        assert store.cat(digest) == path.read_bytes()
    assert store.json("recompress", "--profile", "fast")["failed"] == 0
    for digest, path in by_digest.items():
        assert store.cat(digest) == path.read_bytes()


def test_recompress_killed_midway_loses_nothing_and_finishes(store, dicom_files):
    by_digest = ingest_all(store, dicom_files, "--codec", "zstd")
    proc = subprocess.Popen([cairn_binary(), "recompress", "--profile", "archive", "--jobs", "1", "--data", str(store.root)],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)

    def rewritten():
        return int(store.index_sql("SELECT count(*) FROM blobs WHERE profile = 'archive'")[0][0])

    wait_until(lambda: rewritten() >= 20 or proc.poll() is not None, 120, "recompress to rewrite 20 blobs")
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    verify = store.json("verify")
    assert verify["clean"] and not verify["problems"], verify
    for digest, path in by_digest.items():
        assert store.cat(digest) == path.read_bytes()
    report = store.json("recompress", "--profile", "archive")
    assert report["failed"] == 0
    assert rewritten() + report["kept"] >= 100
    assert store.json("verify")["clean"]
    assert not [p for p in (store.root / "tmp").iterdir()], "tmp/ is empty once a run completes"
