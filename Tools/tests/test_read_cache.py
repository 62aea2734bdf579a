"""The decoded-frame cache through real clients: exact bytes whatever is cached, the cache's
figures in /metrics and `cairn stats`, its configuration refused when wrong, and an erasure run
by another process while the node serves from memory."""
import json

import pytest
import requests

from conftest import image_like, seeded_rng, sha256_digest, wait_until
from dicom_gen import write_ct_study
from node import Node


def cache_figures(node):
    return {name: value for name, value in node.metrics().items() if name.startswith("cairn_frame_cache")}


def test_random_ranges_are_exact_and_served_from_memory_the_second_time(store, tmp_path):
    store.run("dataset", "create", "ct", "--deid-policy", "accept")
    blobs = {}
    for i, size in enumerate([70_000, 300_000, 2_000_003]):
        path = tmp_path / f"blob{i}.bin"
        path.write_bytes(image_like(size, seed=i))
        blobs[sha256_digest(path.read_bytes())] = path.read_bytes()
    store.run("ingest", "--dataset", "ct", "--codec", "zstd", *[str(tmp_path / f"blob{i}.bin") for i in range(3)])
    # Small enough that the 2 MB blob's frames evict each other: hits, misses and evictions all happen.
    node = Node(store, config={"read_cache_bytes": 1 << 20})
    try:
        token = node.token()
        rng = seeded_rng("read-cache ranges")
        session = requests.Session()
        asked = []
        for _ in range(300):
            digest, data = rng.choice(list(blobs.items()))
            start = rng.randrange(len(data))
            end = min(len(data), start + rng.randrange(1, 200_000))
            asked.append((digest, start, end))
            answer = session.get(f"{node.url}/v1/blobs/{digest}", headers=node.headers(token, Range=f"bytes={start}-{end - 1}"))
            assert answer.status_code == 206 and answer.content == data[start:end], (digest, start, end)
        for digest, data in blobs.items():
            answer = session.get(f"{node.url}/v1/blobs/{digest}", headers=node.headers(token))
            assert answer.status_code == 200 and answer.content == data
        before = cache_figures(node)
        # The same small range twice: the second is a hit and decodes nothing.
        digest, start, _ = asked[-1]
        for _ in range(2):
            answer = session.get(f"{node.url}/v1/blobs/{digest}", headers=node.headers(token, Range=f"bytes={start}-{start}"))
            assert answer.content == blobs[digest][start:start + 1]
        after = cache_figures(node)
        assert after["cairn_frame_cache_hits_total"] >= before["cairn_frame_cache_hits_total"] + 1
        assert after["cairn_frame_cache_misses_total"] > 0 and after["cairn_frame_cache_evictions_total"] > 0
        assert 0 < after["cairn_frame_cache_bytes"] <= 1 << 20
        assert after["cairn_frame_cache_capacity_bytes"] == 1 << 20
    finally:
        node.stop()


def test_stats_shows_the_cache_and_bad_values_are_refused(store, tmp_path):
    config = tmp_path / "cache.json"
    config.write_text(json.dumps({"read_cache_bytes": 123456789}))
    stats = json.loads(store.run("stats", "--json", "--config", str(config)).stdout)
    assert stats["read_cache_bytes"] == 123456789
    assert json.loads(store.run("stats", "--json").stdout)["read_cache_bytes"] >= 64 << 20
    for bad in (-1, 1.5, True, "1G"):
        config.write_text(json.dumps({"read_cache_bytes": bad}))
        refused = store.run("stats", "--config", str(config), check=False)
        assert refused.returncode != 0 and b"read_cache_bytes" in refused.stderr, bad


def test_an_erasure_by_another_process_stops_cached_reads(store, tmp_path):
    """A subject erased with the CLI while the node serves its frames from memory is refused
    from then on (within the record map's recheck interval, 50 ms)."""
    store.run("dataset", "create", "ct", "--deid-policy", "accept")
    (tmp_path / "a").mkdir()
    (tmp_path / "b").mkdir()
    write_ct_study(tmp_path / "a", "SUBJ-A", series_count=1, slices=2, size=256)
    write_ct_study(tmp_path / "b", "SUBJ-B", series_count=1, slices=2, size=256, seed=2)
    store.run("ingest", "--dataset", "ct", str(tmp_path / "a"), str(tmp_path / "b"))
    entries = store.ndjson("ls", "--dataset", "ct", "--json")
    node = Node(store)
    try:
        token = node.token()
        erased = [e["digest"] for e in entries if e.get("dicom", {}).get("subject") == "SUBJ-A"]
        kept = [e["digest"] for e in entries if e.get("dicom", {}).get("subject") == "SUBJ-B"]
        assert erased and kept
        for digest in erased + kept:
            for _ in range(2):  # the second read is served from the frame cache
                assert node.get(f"/v1/blobs/{digest}", token).status_code == 200
        store.run("dataset", "erase-subject", "ct", "SUBJ-A")
        wait_until(lambda: all(node.get(f"/v1/blobs/{d}", token).status_code == 404 for d in erased), 5,
                   "erased blobs refused")
        assert all(node.get(f"/v1/blobs/{d}", token).status_code == 200 for d in kept)
    finally:
        node.stop()


@pytest.mark.parametrize("header", ["bytes=0-0", "bytes=-10", "bytes=5-", "bytes=0-1,5-9"])
def test_cached_and_uncached_answers_are_the_same(store, tmp_path, header):
    """Headers and bodies from cached frames equal those of the first (decoding) read."""
    store.run("dataset", "create", "ct", "--deid-policy", "accept")
    path = tmp_path / "blob.bin"
    path.write_bytes(image_like(500_000, seed=7))
    store.run("ingest", "--dataset", "ct", "--codec", "zstd", str(path))
    digest = sha256_digest(path.read_bytes())
    node = Node(store)
    try:
        token = node.token()
        first = node.get(f"/v1/blobs/{digest}", token, headers={"Range": header})
        second = node.get(f"/v1/blobs/{digest}", token, headers={"Range": header})
        assert first.status_code == second.status_code == 206

        def body(answer):
            # Each multipart answer carries a boundary of its own.
            boundary = answer.headers["Content-Type"].partition("boundary=")[2]
            return answer.content.replace(boundary.encode(), b"BOUNDARY") if boundary else answer.content

        assert body(first) == body(second)
        for name in ("Content-Range", "Content-Length", "ETag", "Accept-Ranges", "Cache-Control", "Vary", "Server"):
            assert first.headers.get(name) == second.headers.get(name), name
        assert "Date" in second.headers
    finally:
        node.stop()
