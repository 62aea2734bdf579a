"""The node server through real clients: curl, requests, raw sockets. Every error status has a test."""
import hashlib
import http.client
import json
import os
import random
import socket
import subprocess
import threading
import time

import pytest
import requests

from conftest import GATED, Store, image_like, seeded_rng, sha256_digest, tmpfs, wait_until
from node import Node


@pytest.fixture
def node_store(store, tmp_path):
    """A store with dataset ct (accept), mr (gated) and other (accept) and a few blobs."""
    store.run("dataset", "create", "ct", "--deid-policy", "accept")
    store.run("dataset", "create", *GATED, "mr")
    store.run("dataset", "create", "other", "--deid-policy", "accept")
    files = {}
    for i, size in enumerate([1, 1000, 300_000, 2_000_003]):
        path = tmp_path / f"blob{i}.bin"
        path.write_bytes(image_like(size, seed=i))
        files[sha256_digest(path.read_bytes())] = path.read_bytes()
    store.run("ingest", "--dataset", "ct", *[str(tmp_path / f"blob{i}.bin") for i in range(4)])
    secret = tmp_path / "secret.bin"
    secret.write_bytes(b"held only by dataset other")
    store.run("ingest", "--dataset", "other", str(secret))
    store.files = files
    store.secret = sha256_digest(secret.read_bytes())
    return store


@pytest.fixture
def node(node_store):
    n = Node(node_store, config={"clock_skew_seconds": 0, "max_upload_bytes": 5_000_000, "disk_low_water_bytes": 0,
                                 "idle_timeout_seconds": 3, "audit_flush_milliseconds": 50})
    yield n
    assert n.stop() == 0


def big(store):
    return next(d for d, b in store.files.items() if len(b) == 2_000_003)


def test_curl_whole_range_and_head(node):
    token = node.token()["token"]
    digest = big(node.store)
    data = node.store.files[digest]
    whole = subprocess.run(["curl", "-sf", "-H", f"Authorization: Bearer {token}", f"{node.url}/v1/blobs/{digest}"],
                           capture_output=True, check=True).stdout
    assert whole == data
    part = subprocess.run(["curl", "-sf", "-r", "1000-70999", "-H", f"Authorization: Bearer {token}",
                           f"{node.url}/v1/blobs/{digest}"], capture_output=True, check=True).stdout
    assert part == data[1000:71000]
    head = subprocess.run(["curl", "-sfI", "-H", f"Authorization: Bearer {token}", f"{node.url}/v1/blobs/{digest}"],
                          capture_output=True, check=True).stdout.decode().lower()
    assert "content-length: 2000003" in head and f'etag: "{digest}"' in head and "accept-ranges: bytes" in head


def test_requests_ranges_and_conditionals(node):
    token = node.token()
    digest = big(node.store)
    data = node.store.files[digest]
    path = f"/v1/blobs/{digest}"
    for header, expected in [("bytes=0-0", data[:1]), ("bytes=-100", data[-100:]), ("bytes=1999990-", data[1999990:]),
                             ("bytes=65530-65545", data[65530:65546]), ("bytes=0-99999999", data)]:
        r = node.get(path, token, headers={"Range": header})
        assert r.status_code == 206, header
        assert r.content == expected, header
        assert r.headers["Content-Range"].endswith("/2000003")
    r = node.get(path, token, headers={"Range": "bytes=0-9, 100-109, 5-14"})
    assert r.status_code == 206 and r.headers["Content-Type"].startswith("multipart/byteranges")
    boundary = r.headers["Content-Type"].split("boundary=")[1]
    parts = [p for p in r.content.split(b"--" + boundary.encode()) if p.strip() not in (b"", b"--")]
    bodies = [p.split(b"\r\n\r\n", 1)[1].rstrip(b"\r\n") for p in parts]
    assert bodies == [data[0:15], data[100:110]]
    r = node.get(path, token, headers={"Range": "bytes=2000003-"})
    assert r.status_code == 416 and r.headers["Content-Range"] == "bytes */2000003"
    assert r.json()["error"] == "range_not_satisfiable"
    assert node.get(path, token, headers={"Range": "bytes=oops"}).status_code == 200
    assert node.get(path, token, headers={"Range": "bytes=" + ",".join(f"{i}-{i}" for i in range(0, 400, 2))}).status_code == 416
    r = node.get(path, token, headers={"If-None-Match": f'"{digest}"', "Accept-Encoding": "identity"})
    assert r.status_code == 304 and r.content == b""
    assert node.get(path, token, headers={"If-None-Match": '"sha256:nope"'}).status_code == 200
    assert node.get(path, token, headers={"Range": "bytes=0-1", "If-Range": f'"{digest}"'}).status_code == 206
    r = node.get(path, token, headers={"Range": "bytes=0-1", "If-Range": "Wed, 21 Oct 2015 07:28:00 GMT"})
    assert r.status_code == 200 and len(r.content) == len(data)


def test_ten_thousand_ranges_and_huge_headers_are_refused(node):
    token = node.token()
    path = f"/v1/blobs/{big(node.store)}"
    many = "bytes=" + ",".join(f"{i * 3}-{i * 3}" for i in range(10_000))
    r = node.get(path, token, headers={"Range": many})
    assert r.status_code in (400, 416, 431), r.status_code
    r = node.get(path, token, headers={"Range": "bytes=" + "9" * 5000 + "-"})
    assert r.status_code == 200
    r = node.get(path, token, headers={"X-Junk": "a" * 200_000})
    assert r.status_code in (400, 431)
    assert node.alive()


def test_token_refusals(node, tmp_path):
    digest = big(node.store)
    path = f"/v1/blobs/{digest}"
    assert node.get(path).status_code == 401
    assert node.get(path).json()["error"] == "unauthorized"
    good = node.token()["token"]
    head, payload, signature = good.split(".")
    forged_sig = signature[:-4] + ("AAAA" if not signature.endswith("AAAA") else "BBBB")
    assert node.get(path, f"{head}.{payload}.{forged_sig}").status_code == 401
    none_header = "eyJhbGciOiJub25lIiwidHlwIjoiSldUIn0"  # {"alg":"none","typ":"JWT"}
    assert node.get(path, f"{none_header}.{payload}.").status_code == 401
    assert "EdDSA only" in node.get(path, f"{none_header}.{payload}.").json()["detail"]
    # Another node's key.
    stranger = Store(tmp_path / "stranger")
    stranger.run("init")
    stranger.run("dataset", "create", *GATED, "ct")
    foreign = stranger.json("token", "issue", "--subject", "x", "--datasets", "ct")["token"]
    assert node.get(path, foreign).status_code == 401
    # Expired (the test node allows no clock skew), wrong audience, another dataset, revoked.
    def refused(token):
        """(status, JSON body) once `token` is no longer served (one byte asked for), else None.
        (Not the response itself: a requests.Response with an error status is false.)"""
        r = node.get(path, token, headers={"Range": "bytes=0-0"})
        return None if r.status_code == 206 else (r.status_code, r.json())

    short = node.token(ttl="1s")["token"]
    status, body = wait_until(lambda: refused(short), timeout=10, what="a 1 s token to expire")
    assert status == 401 and "expired" in body["detail"]
    assert node.get(path, node.token(audience="some-other-node")).status_code == 401
    assert node.get(path, node.token(audience="test-node")).status_code == 200
    assert node.get(path, node.token(datasets="mr")).status_code == 404
    assert node.get(f"/v1/blobs/{node.store.secret}", good).status_code == 404
    assert node.get(f"/v1/blobs/{node.store.secret}", node.token(datasets="other")).status_code == 200
    assert node.get("/v1/datasets/other", good).status_code == 403
    revoked = node.token()
    assert node.get(path, revoked).status_code == 200
    node.store.run("token", "revoke", revoked["jti"])
    status, body = wait_until(lambda: refused(revoked), timeout=5, what="the node to pick up the revocation")
    assert status == 401 and "revoked" in body["detail"]
    # Health and metrics need no token; everything else does.
    assert node.get("/healthz").status_code == 200
    assert node.get("/readyz").status_code == 200
    assert node.get("/v1/datasets").status_code == 401


def test_bad_digests_and_traversal(node):
    token = node.token()
    for bad in ["sha256:xyz", "sha256:" + "A" * 64, "md5:" + "0" * 32, "%2e%2e%2findex.sqlite", "sha256:" + "0" * 65]:
        r = node.get(f"/v1/blobs/{bad}", token)
        assert r.status_code in (400, 404), bad
        assert r.status_code != 200
    conn = http.client.HTTPConnection("127.0.0.1", node.port, timeout=10)
    for raw in ["/v1/blobs/../../index.sqlite", "/v1/blobs/..%2F..%2Findex.sqlite", "/v1/../index.sqlite",
                "/v1/blobs/sha256:" + "0" * 64 + "/../../keys/node.ed25519"]:
        conn.request("GET", raw, headers=node.headers(token))
        response = conn.getresponse()
        body = response.read()
        assert response.status in (400, 404), raw
        assert b"SQLite" not in body
    assert node.get(f"/v1/blobs/sha256:{'0' * 64}", token).status_code == 404


def test_datasets_and_entries_with_resume(node):
    token = node.token(datasets="ct,mr")
    listed = node.get("/v1/datasets", token).json()["datasets"]
    assert [d["id"] for d in listed] == ["ct", "mr"]
    shown = node.get("/v1/datasets/ct", token).json()
    assert shown["counts"]["files"] == 4
    r = node.get("/v1/datasets/ct/entries", token, stream=True)
    lines = [json.loads(line) for line in r.iter_lines() if line]
    assert sorted(e["digest"] for e in lines) == sorted(node.store.files)
    assert {e["digest"]: e["size"] for e in lines} == {d: len(b) for d, b in node.store.files.items()}
    rest = [json.loads(line) for line in node.get(f"/v1/datasets/ct/entries?after={lines[1]['digest']}", token).text.splitlines()]
    assert rest == lines[2:]
    assert node.get("/v1/datasets/ct/entries?after=bogus", token).status_code == 400
    assert node.get("/v1/datasets/nope", node.token(datasets="ct")).status_code == 403
    assert node.get("/v1/datasets/ct/snapshots/latest", token).status_code == 404


def test_fsspec_and_pydicom_read_only_what_they_need(node_store, tmp_path):
    fsspec = pytest.importorskip("fsspec")
    pydicom = pytest.importorskip("pydicom")
    from pydicom.dataset import FileMetaDataset
    from pydicom.uid import ExplicitVRLittleEndian, generate_uid
    import numpy as np

    ds = pydicom.Dataset()
    ds.file_meta = FileMetaDataset()
    ds.file_meta.TransferSyntaxUID = ExplicitVRLittleEndian
    ds.file_meta.MediaStorageSOPClassUID = "1.2.840.10008.5.1.4.1.1.2"
    ds.file_meta.MediaStorageSOPInstanceUID = generate_uid()
    ds.SOPClassUID = ds.file_meta.MediaStorageSOPClassUID
    ds.SOPInstanceUID = ds.file_meta.MediaStorageSOPInstanceUID
    ds.PatientID, ds.PatientIdentityRemoved, ds.Modality = "PSEUDO-1", "YES", "CT"
    ds.StudyInstanceUID, ds.SeriesInstanceUID = generate_uid(), generate_uid()
    ds.Rows, ds.Columns, ds.NumberOfFrames = 512, 512, 20
    ds.BitsAllocated, ds.BitsStored, ds.HighBit, ds.PixelRepresentation = 16, 12, 11, 0
    ds.SamplesPerPixel, ds.PhotometricInterpretation = 1, "MONOCHROME2"
    rng = np.random.default_rng(7)
    ds.PixelData = (rng.integers(0, 64, (20, 512, 512)) + np.arange(512)).astype("<u2").tobytes()
    path = tmp_path / "multiframe.dcm"
    ds.save_as(path, enforce_file_format=True)
    node_store.run("ingest", "--dataset", "ct", str(path))
    original = path.read_bytes()
    digest = sha256_digest(original)
    node = Node(node_store)
    try:
        token = node.token()["token"]
        fs = fsspec.filesystem("http", headers={"Authorization": f"Bearer {token}"})
        url = f"{node.url}/v1/blobs/{digest}"
        before = node.metrics().get("cairn_bytes_served_total", 0)
        with fs.open(url, "rb", block_size=16 * 1024, cache_type="readahead") as f:
            header = pydicom.dcmread(f, stop_before_pixels=True)
        served = node.metrics()["cairn_bytes_served_total"] - before
        assert header.SOPInstanceUID == ds.SOPInstanceUID and header.NumberOfFrames == 20
        assert served < 64 * 1024, f"a header read pulled {served} bytes of a {len(original)}-byte file"
        with fs.open(url, "rb") as f:
            assert f.read() == original
        full = pydicom.dcmread(fs.open(url, "rb"))
        assert np.array_equal(full.pixel_array, ds.pixel_array)
        # One frame by range, at the offset the entries line gives.
        entry = next(json.loads(l) for l in node.get("/v1/datasets/ct/entries", token).text.splitlines()
                     if json.loads(l)["digest"] == digest)
        assert entry["frames"] == 20 and len(entry["frame_offsets"]) == 20
        frame = 7
        start = entry["frame_offsets"][frame]
        r = node.get(f"/v1/blobs/{digest}", token, headers={"Range": f"bytes={start}-{start + 512 * 512 * 2 - 1}"})
        assert np.array_equal(np.frombuffer(r.content, "<u2").reshape(512, 512), ds.pixel_array[frame])
    finally:
        assert node.stop() == 0


def test_many_concurrent_clients(node):
    token = node.token()
    digest = big(node.store)
    data = node.store.files[digest]
    errors = []
    seeds = seeded_rng("concurrent clients")

    def worker(rng):
        session = requests.Session()
        for _ in range(40):
            a = rng.randrange(len(data))
            b = min(len(data), a + rng.randrange(1, 200_000))
            r = session.get(f"{node.url}/v1/blobs/{digest}", headers=node.headers(token, Range=f"bytes={a}-{b - 1}"), timeout=30)
            if r.status_code != 206 or r.content != data[a:b]:
                errors.append((a, b, r.status_code))

    threads = [threading.Thread(target=worker, args=(random.Random(seeds.getrandbits(64)),)) for _ in range(24)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []


def test_client_disconnecting_mid_body(node):
    token = node.token()["token"]
    digest = big(node.store)
    for _ in range(20):
        s = socket.create_connection(("127.0.0.1", node.port))
        s.sendall(f"GET /v1/blobs/{digest} HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {token}\r\n\r\n".encode())
        s.recv(1000)
        s.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, b"\x01\x00\x00\x00\x00\x00\x00\x00")
        s.close()
    assert node.alive()
    assert node.get(f"/v1/blobs/{digest}", token).content == node.store.files[digest]
    wait_until(lambda: any("cut short" in (e.get("detail") or "") for e in node.store.ndjson("audit", "export")),
               timeout=10, what="a 'cut short' read in the audit trail")


def test_slowloris_is_cut_off(node):
    s = socket.create_connection(("127.0.0.1", node.port))
    s.sendall(b"GET /healthz HTTP/1.1\r\nHost: x\r\n")
    start = time.time()
    closed = False
    try:
        while time.time() - start < 15:
            s.sendall(b"X-a: b\r\n")
            time.sleep(0.5)
    except (BrokenPipeError, ConnectionResetError):
        closed = True
    if not closed:
        s.settimeout(5)
        closed = s.recv(100) == b""
    assert closed, "a client trickling its headers was never cut off"
    assert time.time() - start < 10
    assert node.alive()


def test_uploads(node, tmp_path, dicom_files):
    ingest = node.token(datasets="ct,mr", scope="ingest")
    reader = node.token(datasets="ct")
    body = image_like(400_000, seed=99)
    r = requests.post(f"{node.url}/v1/datasets/ct/instances", data=body, headers=node.headers(ingest), timeout=30)
    assert r.status_code == 201, r.text
    assert r.json()["digest"] == sha256_digest(body)
    again = requests.post(f"{node.url}/v1/datasets/ct/instances", data=body, headers=node.headers(ingest), timeout=30)
    assert again.status_code == 201 and again.json()["deduplicated"] is True
    assert node.get(f"/v1/blobs/{sha256_digest(body)}", reader).content == body
    # A real DICOM file with identifiers: the gated dataset refuses it, and nothing is stored.
    dicom = next(p for p in dicom_files if p.name == "CT_small.dcm")
    refused = requests.post(f"{node.url}/v1/datasets/mr/instances", data=dicom.read_bytes(), headers=node.headers(ingest), timeout=30)
    assert refused.status_code == 422 and refused.json()["error"] == "refused"
    assert all(e["digest"] != sha256_digest(dicom.read_bytes()) for e in node.store.ndjson("ls", "--dataset", "mr"))
    # Over the 5 MB limit, declared or streamed (chunked).
    assert requests.post(f"{node.url}/v1/datasets/ct/instances", data=b"x" * 5_000_001, headers=node.headers(ingest),
                         timeout=30).status_code == 413
    chunks = (b"y" * 1_000_000 for _ in range(6))
    assert requests.post(f"{node.url}/v1/datasets/ct/instances", data=chunks, headers=node.headers(ingest),
                         timeout=30).status_code == 413
    assert requests.post(f"{node.url}/v1/datasets/ct/instances", data=body, headers=node.headers(reader),
                         timeout=30).status_code == 403
    assert requests.post(f"{node.url}/v1/datasets/ct/instances", data=body, timeout=30).status_code == 401
    # Cut off midway: the socket closes after 100 kB of a declared 1 MB.
    before = node.store.ndjson("ls")
    tmp = node.store.root / "tmp"
    s = socket.create_connection(("127.0.0.1", node.port))
    s.sendall((f"POST /v1/datasets/ct/instances HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {ingest['token']}\r\n"
               "Content-Length: 1000000\r\n\r\n").encode() + image_like(100_000, seed=5))
    # Close once the node has spooled part of the body, so the cut comes mid-body.
    wait_until(lambda: any(p.stat().st_size > 0 for p in tmp.iterdir()), timeout=10, what="the upload to reach the spool")
    s.close()
    wait_until(lambda: any(e["action"] == "upload" and "cut off" in (e.get("detail") or "")
                           for e in node.store.ndjson("audit", "export")), timeout=10, what="the cut-off upload's audit record")
    wait_until(lambda: os.listdir(tmp) == [], timeout=10, what="the cut-off upload's spool file to be removed")
    assert node.store.ndjson("ls") == before
    assert node.alive()


def test_upload_to_a_full_disk_gets_507(tmp_path):
    with tmpfs(tmp_path / "disk", "16m") as mount:
        store = Store(mount / "data")
        store.run("init")
        store.run("dataset", "create", "ct", "--deid-policy", "accept")
        node = Node(store, config={"disk_low_water_bytes": 0})
        try:
            token = node.token(scope="ingest")
            r = requests.post(f"{node.url}/v1/datasets/ct/instances", data=os.urandom(20_000_000),
                              headers=node.headers(token), timeout=60)
            assert r.status_code == 507, r.text
            assert r.json()["error"] == "disk_full"
            assert str(tmp_path) not in r.text and "/" not in r.json()["detail"], r.text  # no path on the node
            assert os.listdir(store.root / "tmp") == []
            small = requests.post(f"{node.url}/v1/datasets/ct/instances", data=b"still works",
                                  headers=node.headers(token), timeout=30)
            assert small.status_code == 201
            assert node.alive()
        finally:
            assert node.stop() == 0
        # With a low-water mark above what is free, uploads are refused up front and /readyz says why.
        node = Node(store, config={"disk_low_water_bytes": 1 << 40})
        try:
            token = node.token(scope="ingest")
            r = requests.post(f"{node.url}/v1/datasets/ct/instances", data=b"abc", headers=node.headers(token), timeout=30)
            assert r.status_code == 507
            ready = node.ready()
            assert ready.status_code == 503 and "low-water" in ready.json()["problems"][0]
            assert "/" not in r.json()["detail"], r.json()
        finally:
            assert node.stop() == 0
        assert store.run("verify").returncode == 0


def accepts_connections(port):
    try:
        socket.create_connection(("127.0.0.1", port), timeout=5).close()
        return True
    except ConnectionRefusedError:
        return False


def test_sigterm_lets_in_flight_responses_finish(node_store, tmp_path):
    # Far more than the socket buffers on both ends hold (the 2 MB blob fits in them whole, so the
    # node could have written all of it and exited at once, and the client would still read it all).
    data = random.Random(1).randbytes(24_000_000)
    (tmp_path / "large.bin").write_bytes(data)
    node_store.run("ingest", "--dataset", "ct", str(tmp_path / "large.bin"))
    digest = sha256_digest(data)
    node = Node(node_store)
    token = node.token()["token"]
    s = socket.socket()
    s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 8192)  # before connect, so the window stays small
    s.connect(("127.0.0.1", node.port))
    s.sendall(f"GET /v1/blobs/{digest} HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {token}\r\n\r\n".encode())
    received = s.recv(4096)
    node.proc.send_signal(15)
    wait_until(lambda: not accepts_connections(node.port), timeout=10, what="the node to stop listening on SIGTERM")
    assert node.proc.poll() is None, "the node exited with a response still being sent"
    # A reader slower than the node (8 KiB at a time, with pauses) keeps the node's socket buffer
    # full, so that when the body's last part is written bytes are still queued in the node: the
    # close that ends a quiesced connection must wait for them.
    while True:
        chunk = s.recv(8192)
        if not chunk:
            break
        received += chunk
        if len(received) > len(data) and received.endswith(data[-100:]):
            break
        time.sleep(0.0002)
    head, body = received.split(b"\r\n\r\n", 1)
    s.close()
    if body != data:
        differs = next((i for i, (a, b) in enumerate(zip(body, data)) if a != b), min(len(body), len(data)))
        node.proc.wait(timeout=30)
        reads = [e for e in node_store.ndjson("audit", "export") if e["action"] == "read"]
        raise AssertionError(f"got {len(body)} of {len(data)} bytes, the same up to byte {differs}; "
                             f"the node's audit of the read: {reads}")
    assert node.proc.wait(timeout=30) == 0
    assert any(e["action"] == "read" and e.get("bytes") == len(data) for e in node_store.ndjson("audit", "export"))


def test_tls(node_store, tmp_path):
    cert, key = tmp_path / "cert.pem", tmp_path / "key.pem"
    subprocess.run(["openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes",
                    "-keyout", str(key), "-out", str(cert), "-days", "1", "-subj", "/CN=127.0.0.1",
                    "-addext", "subjectAltName=IP:127.0.0.1"], check=True, capture_output=True)
    node = Node(node_store, config={"tls_certificate": str(cert), "tls_key": str(key)})
    try:
        assert node.url.startswith("https://")
        token = node.token()
        digest = big(node_store)
        r = requests.get(f"{node.url}/v1/blobs/{digest}", headers=node.headers(token), verify=str(cert), timeout=30)
        assert r.content == node_store.files[digest]
        with pytest.raises(requests.exceptions.ConnectionError):
            requests.get(node.url.replace("https", "http") + "/healthz", timeout=5)
    finally:
        assert node.stop() == 0


def test_trusted_issuer_tokens(node_store, tmp_path):
    hub = Store(tmp_path / "hub")
    hub.run("init")
    hub.run("dataset", "create", *GATED, "ct")
    hub_key = hub.run("key", "show").stdout.decode().strip()
    node = Node(node_store, config={"trusted_issuers": [{"name": "hub", "public_key": hub_key}]})
    try:
        granted = hub.json("token", "issue", "--subject", "job-from-hub", "--datasets", "ct", "--audience", "test-node")
        digest = big(node_store)
        assert node.get(f"/v1/blobs/{digest}", granted).status_code == 200
        elsewhere = hub.json("token", "issue", "--subject", "job-from-hub", "--datasets", "ct", "--audience", "node-x")
        assert node.get(f"/v1/blobs/{digest}", elsewhere).status_code == 401
    finally:
        assert node.stop() == 0
    assert any(e["actor"] == "job-from-hub" and e["action"] == "read" for e in node_store.ndjson("audit", "export"))


def test_audit_trail_verifies_and_names_tampering(node):
    token = node.token()
    digest = big(node.store)
    node.get(f"/v1/blobs/{digest}", token, headers={"Range": "bytes=10-19"})
    node.get(f"/v1/blobs/{digest}")
    assert node.stop() == 0
    records = node.store.ndjson("audit", "export")
    read = next(r for r in records if r["action"] == "read")
    assert read["actor"] == "job-1" and read["dataset"] == "ct" and read["digest"] == digest
    assert read["range"] == "10-19" and read["bytes"] == 10 and read["status"] == 206
    assert any(r["action"] == "deny" and r["status"] == 401 for r in records)
    assert any(r["action"] == "token.issue" and r["actor"].startswith("cli:") for r in records)
    # No token ever reaches the log.
    assert token["token"] not in json.dumps(records)
    assert node.store.json("audit", "verify")["ok"] is True
    since = node.store.ndjson("audit", "export", "--since", "2999-01-01T00:00:00Z")
    assert since == []
    node.store.index_sql("UPDATE audit SET bytes = 1 WHERE seq = ?", (read["seq"],))
    proc = node.store.run("audit", "verify", check=False)
    assert proc.returncode == 1
    assert f"record {read['seq']}" in proc.stderr.decode()


def test_metrics_count_what_happened(node):
    token = node.token()
    digest = big(node.store)
    node.get(f"/v1/blobs/{digest}", token, headers={"Accept-Encoding": "identity"})
    node.get(f"/v1/blobs/{digest}")
    m = node.metrics()
    assert m['cairn_http_requests_total{route="/v1/blobs/{digest}",method="GET",status="200"}'] == 1
    assert m['cairn_http_requests_total{route="/v1/blobs/{digest}",method="GET",status="401"}'] == 1
    assert m["cairn_bytes_served_total"] >= 2_000_003
    assert m["cairn_frames_decompressed_total"] >= 30
    assert m["cairn_disk_free_bytes"] > 0
    assert any(k.startswith("cairn_http_request_duration_seconds_bucket") for k in m)


@pytest.mark.local_files
def test_damaged_blobs_are_never_served(node):
    token = node.token()
    digest = big(node.store)
    data = node.store.files[digest]
    path = node.store.path(digest)
    blob = bytearray(open(path, "rb").read())
    blob[len(blob) // 2] ^= 0xFF
    os.chmod(path, 0o644)
    with open(path, "wb") as f:
        f.write(blob)
    # Decoded by the node: the damaged frame stops the stream, the client sees a short body.
    with pytest.raises(requests.exceptions.ChunkedEncodingError):  # urllib3: IncompleteRead
        node.get(f"/v1/blobs/{digest}", token, headers={"Accept-Encoding": "identity"}).content
    # Sent as stored (Content-Encoding: zstd): the frame's own checksum fails in the client's decoder.
    with pytest.raises(requests.exceptions.ContentDecodingError):
        node.get(f"/v1/blobs/{digest}", token, headers={"Accept-Encoding": "zstd"}).content
    r = node.get(f"/v1/blobs/{digest}", token, headers={"Range": "bytes=0-65535"})
    assert r.status_code == 206 and r.content == data[:65536]
    assert node.metrics()["cairn_checksum_failures_total"] >= 1
    # A blob whose file is gone: 500 with a reason, before any body byte.
    other = next(d for d, b in node.store.files.items() if len(b) == 300_000)
    os.unlink(node.store.path(other))
    r = node.get(f"/v1/blobs/{other}", token)
    assert r.status_code == 500 and r.json()["error"] == "blob_unavailable"
    assert node.alive()


@pytest.mark.local_files
def test_zstd_content_encoding_for_clients_that_accept_it(node):
    """requests (urllib3 2 with backports.zstd, or Python 3.14) asks for zstd and decodes it."""
    token = node.token()
    digest = big(node.store)
    data = node.store.files[digest]
    r = node.get(f"/v1/blobs/{digest}", token)
    assert "zstd" in r.request.headers["Accept-Encoding"]
    assert r.headers["Content-Encoding"] == "zstd" and r.headers["Vary"] == "Accept-Encoding"
    assert r.content == data
    stored = open(node.store.path(digest), "rb").read()
    assert int(r.headers["Content-Length"]) == len(stored) < len(data)
    raw = node.get(f"/v1/blobs/{digest}", token, stream=True).raw.read(decode_content=False)
    assert raw == stored
    # Stock zstd reads what was sent.
    assert subprocess.run(["zstd", "-dc"], input=raw, capture_output=True, check=True).stdout == data
    etag = r.headers["ETag"]
    assert etag == f'"{digest}+zstd"'
    assert node.get(f"/v1/blobs/{digest}", token, headers={"If-None-Match": etag}).status_code == 304
    identity = node.get(f"/v1/blobs/{digest}", token, headers={"Accept-Encoding": "identity"})
    assert "Content-Encoding" not in identity.headers and identity.headers["ETag"] == f'"{digest}"'
    ranged = node.get(f"/v1/blobs/{digest}", token, headers={"Range": "bytes=5-9"})
    assert "Content-Encoding" not in ranged.headers and ranged.content == data[5:10]
