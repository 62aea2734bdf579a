"""Issue 10, the hub and the node's identity: a zstd bomb costs the hub nothing, a node has one id
(the README's commands replicate in order, a different id is refused with how to rename), a push
the hub refuses for good stops and shows, and small cells are withheld everywhere the hub counts."""
import concurrent.futures
import hashlib
import json
import struct
import subprocess

import pytest
import requests
from backports import zstd
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from conftest import GATED, REPO, Store, cairn_binary, sha256_digest, wait_until
from manifest_reference import b64url_encode, canonical, entries_root, push_headers
from node import Node, proc_status_bytes
from test_federation import Hub, free_port, make_corpus


def signed_snapshot(key, node, dataset, entries, seq=1, parent=None):
    doc = {"type": "cairn.snapshot/v1", "node": node, "dataset": dataset, "seq": seq, "parent": parent, "metadata": {},
           "added": entries, "removed": [], "entries": len(entries), "entries_root": entries_root(entries),
           "summary": {}, "created_at": "2026-11-29T00:00:00Z"}
    doc["signature"] = {"alg": "EdDSA", "kid": "k", "sig": b64url_encode(key.sign(canonical(doc)))}
    body = canonical(doc)
    return body, "sha256:" + hashlib.sha256(body).hexdigest()


def declared_huge_frame(declared):
    """A zstd frame whose header declares `declared` bytes of content but holds 16 (a raw block)."""
    descriptor = 0b11 << 6  # 8-byte Frame_Content_Size, not single-segment: a window byte follows
    window = 0x00  # a 1 KiB window
    block_header = (16 << 3) | (0 << 1) | 1  # raw block of 16 bytes, last block
    return (b"\x28\xb5\x2f\xfd" + bytes([descriptor, window]) + struct.pack("<Q", declared)
            + struct.pack("<I", block_header)[:3] + b"x" * 16)


def test_zstd_bombs_cost_the_hub_nothing(tmp_path):
    """8 clients at once send a 1 GiB zstd bomb (content size in the frame header) and a frame that
    declares almost 1 GiB but holds 16 bytes, as an unenrolled node and as an enrolled one (pushes
    signed with its key, so they reach the inflater): every one is refused, the hub's peak RSS stays
    under 300 MB, and the next honest push is applied."""
    bomb = zstd.compress(bytes(1 << 30), level=19)
    assert len(bomb) < 64 * 1024 and zstd.get_frame_info(bomb).decompressed_size == 1 << 30
    liar = declared_huge_frame((1 << 30) - 64)
    hub = Hub(tmp_path / "hub", free_port())
    try:
        key = Ed25519PrivateKey.generate()
        hub.cli("enroll", "honest", b64url_encode(key.public_key().public_bytes_raw()))
        before = proc_status_bytes(hub.proc.pid, "VmHWM")
        digest = "sha256:" + "0" * 64

        evil = Ed25519PrivateKey.generate()

        def send(job):
            node, body = job
            r = requests.put(f"{hub.url}/v1/nodes/{node}/datasets/x/snapshots/{digest}", data=body, timeout=120,
                             headers=push_headers(key if node == "honest" else evil, node, "x", digest, body,
                                                  **{"Content-Encoding": "zstd"}))
            return node, len(body), r.status_code, r.json().get("error")

        jobs = [(node, body) for node in ("evil", "honest") for body in (bomb, liar) for _ in range(8)]
        with concurrent.futures.ThreadPoolExecutor(8) as pool:
            answers = list(pool.map(send, jobs))
        peak = proc_status_bytes(hub.proc.pid, "VmHWM")
        print(f"hub VmHWM before {before / 2**20:.1f} MiB, after {len(jobs)} bomb pushes {peak / 2**20:.1f} MiB")
        for node, size, status, error in answers:
            if node == "evil":
                assert (status, error) == (403, "unauthorized_push"), (node, size, status, error)
            else:
                assert status in (400, 413, 503), (node, size, status, error)
        assert any(status == 413 for node, _, status, _ in answers if node == "honest"), "no bomb reached the inflater"
        assert peak < 300 * 2**20, f"hub peak RSS {peak / 2**20:.0f} MiB"
        entries = sorted(({"digest": "sha256:" + hashlib.sha256(str(i).encode()).hexdigest(), "size": i,
                           "subject": f"S{i % 7}", "modality": "CT"} for i in range(50)), key=lambda e: e["digest"])
        body, real = signed_snapshot(key, "honest", "x", entries)
        packed = zstd.compress(body)
        r = requests.put(f"{hub.url}/v1/nodes/honest/datasets/x/snapshots/{real}", data=packed,
                         headers=push_headers(key, "honest", "x", real, packed, **{"Content-Encoding": "zstd"}), timeout=30)
        assert r.status_code == 201, r.text
        assert hub.head("honest", "x")["digest"] == real
        # The hub's audit chain: the enrolment, the catalogue grant the test hub makes, and the one
        # snapshot applied; the bombs never reached intake.
        # A forged snapshot is refused and costs no disk: only what the node signed is recorded. (The
        # push itself is signed by honest here: the document's own signature is what is forged.)
        forged, forged_digest = signed_snapshot(Ed25519PrivateKey.generate(), "honest", "x", entries[:10], seq=2, parent=real)
        r = requests.put(f"{hub.url}/v1/nodes/honest/datasets/x/snapshots/{forged_digest}", data=forged, timeout=30,
                         headers=push_headers(key, "honest", "x", forged_digest, forged))
        assert r.status_code == 403 and r.json()["error"] == "bad_signature"
        stale, stale_digest = signed_snapshot(key, "honest", "x", entries[:10], seq=2, parent="sha256:" + "1" * 64)
        r = requests.put(f"{hub.url}/v1/nodes/honest/datasets/x/snapshots/{stale_digest}", data=stale, timeout=30,
                         headers=push_headers(key, "honest", "x", stale_digest, stale))
        assert r.status_code == 409 and r.json()["error"] == "out_of_order"
        records = [json.loads(line) for line in hub.cli("audit", "export", "--json").splitlines()]
        assert [r["action"] for r in records] == ["token.issue", "node.enroll", "snapshot.apply", "snapshot.refuse"], records
        assert records[2]["digest"] == real and records[2]["actor"] == "honest"
        assert records[3]["digest"] == stale_digest and "head" in records[3]["detail"]
        assert json.loads(hub.cli("audit", "verify", "--json")) == {"ok": True, "records": 4}
        r = requests.put(f"{hub.url}/v1/nodes/honest/datasets/x/snapshots/{real}", data=body,
                         headers=push_headers(key, "honest", "x", real, body, **{"Content-Encoding": "br"}), timeout=30)
        assert r.status_code == 415
        # Senders who cannot sign as a node hold no slot: four anonymous trickles, in honest's name,
        # with a large declared length, are answered 403 at once and honest's next push goes in.
        import socket
        slow = []
        for n in range(4):
            sock = socket.create_connection(("127.0.0.1", hub.port))
            sock.sendall(f"PUT /v1/nodes/honest/datasets/y{n}/snapshots/{digest} HTTP/1.1\r\nHost: x\r\n"
                         f"Content-Length: 100000\r\n\r\n{{".encode())
            sock.settimeout(10)
            slow.append(sock)
        try:
            for sock in slow:
                answer = sock.recv(4096).decode(errors="replace")
                assert answer.startswith("HTTP/1.1 403") and "unauthorized_push" in answer, answer[:200]
            second, second_digest = signed_snapshot(key, "honest", "w", entries[:20])
            r = requests.put(f"{hub.url}/v1/nodes/honest/datasets/w/snapshots/{second_digest}", data=second, timeout=30,
                             headers=push_headers(key, "honest", "w", second_digest, second))
            assert r.status_code == 201, r.text
        finally:
            for sock in slow:
                sock.close()
        # An unenrolled id and a bad signature get the same answer: no one can list enrolled nodes.
        ghost = requests.put(f"{hub.url}/v1/nodes/ghost/datasets/x/snapshots/{digest}", data=b"{}", timeout=30,
                             headers=push_headers(evil, "ghost", "x", digest, b"{}"))
        liar = requests.put(f"{hub.url}/v1/nodes/honest/datasets/x/snapshots/{digest}", data=b"{}", timeout=30,
                            headers=push_headers(evil, "honest", "x", digest, b"{}"))
        assert (ghost.status_code, ghost.json()) == (liar.status_code, liar.json()) and ghost.status_code == 403
        # A signature from outside the clock skew, or for another length, is refused too.
        late = requests.put(f"{hub.url}/v1/nodes/honest/datasets/x/snapshots/{digest}", data=b"{}", timeout=30,
                            headers=push_headers(key, "honest", "x", digest, b"{}", timestamp=1_000_000_000))
        assert late.status_code == 403
        # A declared length over max_snapshot_bytes is refused before a byte is read.
        huge = socket.create_connection(("127.0.0.1", hub.port))
        try:
            signed = push_headers(key, "honest", "x", digest, b"", length=10 * 2**30)["Cairn-Push"]
            huge.sendall(f"PUT /v1/nodes/honest/datasets/x/snapshots/{digest} HTTP/1.1\r\nHost: x\r\n"
                         f"Content-Length: {10 * 2**30}\r\nCairn-Push: {signed}\r\n\r\n{{".encode())
            huge.settimeout(10)
            answer = huge.recv(4096).decode(errors="replace")
            assert answer.startswith("HTTP/1.1 413"), answer[:200]
        finally:
            huge.close()
    finally:
        hub.stop()


def cli(store, *args):
    return subprocess.run([cairn_binary(), *args, "--data", str(store.root)], capture_output=True, text=True)


def test_readme_commands_in_order_replicate(tmp_path):
    """README "Manifests, replication and the hub", in order, on a fresh store and hub."""
    corpus = tmp_path / "corpus"
    make_corpus(corpus, seed=3, ct=4, mr=2)
    store = Store(tmp_path / "data")
    store.run("init", "--node-id", "hospital-a")
    store.run("dataset", "create", *GATED, "lung-ct", "--publish-attributes", "subject,study_uid,modality,body_part,sex")
    store.run("ingest", "--dataset", "lung-ct", str(corpus))
    published = store.json("dataset", "publish", "lung-ct")
    assert published["node"] == "hospital-a"
    hub = Hub(tmp_path / "hub", free_port())
    node = None
    try:
        hub.cli("enroll", "hospital-a", store.run("key", "show").stdout.decode().strip())
        node = Node(store, node_id="hospital-a", extra=("--hub", hub.url))
        wait_until(lambda: (hub.head("hospital-a", "lung-ct") or {}).get("digest") == published["digest"],
                   timeout=20, what="the hub to hold hospital-a/lung-ct")
        # The same id again is fine; another is refused, before anything is served or signed.
        other = cli(store, "node", "serve", "--node-id", "hospital-b", "--listen", "127.0.0.1:0")
        assert other.returncode == 2 and "this node's id is 'hospital-a'" in other.stderr
        assert "cairn node rename hospital-b" in other.stderr
        again = cli(store, "dataset", "publish", "lung-ct", "--node-id", "hospital-b")
        assert again.returncode == 2 and "cairn node rename" in again.stderr
    finally:
        if node:
            node.stop()
        hub.stop()


def test_a_node_published_under_its_host_name_is_renamed_deliberately(tmp_path):
    """The order that used to push forever: publish with no id (the host name is chosen), then serve
    under another id: refused with how to rename; after `node rename` the snapshots are re-signed
    and replicate."""
    corpus = tmp_path / "corpus"
    make_corpus(corpus, seed=4, ct=3, mr=1)
    store = Store(tmp_path / "data")
    store.run("init")
    store.run("dataset", "create", *GATED, "ds1")
    store.run("ingest", "--dataset", "ds1", str(corpus))
    first = store.json("dataset", "publish", "ds1")
    assert first["node"] not in ("", "hospital-a")
    refused = cli(store, "node", "serve", "--node-id", "hospital-a", "--listen", "127.0.0.1:0")
    assert refused.returncode == 2 and f"this node's id is '{first['node']}'" in refused.stderr
    renamed = store.json("node", "rename", "hospital-a")
    assert renamed["node"] == "hospital-a" and renamed["old"] == first["node"]
    assert [line.split()[0] for line in renamed["republished"]] == ["ds1"]
    audit = store.ndjson("audit", "export")
    assert any(r["action"] == "node.rename" for r in audit)
    hub = Hub(tmp_path / "hub", free_port())
    node = None
    try:
        hub.cli("enroll", "hospital-a", store.run("key", "show").stdout.decode().strip())
        node = Node(store, node_id="hospital-a", extra=("--hub", hub.url))
        wait_until(lambda: (hub.head("hospital-a", "ds1") or {}).get("seq") == 1, timeout=20, what="the re-signed snapshot")
    finally:
        if node:
            node.stop()
        hub.stop()


def test_a_push_refused_for_good_stops_and_shows(tmp_path):
    """An unenrolled node: the hub's 403 cannot change by retrying, so the push worker stops,
    /readyz is 503 naming it, `cairn stats` and /metrics show it; after enrolment `cairn node resume`
    lets the running node push again."""
    corpus = tmp_path / "corpus"
    make_corpus(corpus, seed=5, ct=2, mr=1)
    store = Store(tmp_path / "data")
    store.run("init", "--node-id", "hospital-c")
    store.run("dataset", "create", *GATED, "ds")
    store.run("ingest", "--dataset", "ds", str(corpus))
    published = store.json("dataset", "publish", "ds")
    hub = Hub(tmp_path / "hub", free_port())
    node = None
    try:
        node = Node(store, node_id="hospital-c", extra=("--hub", hub.url))
        wait_until(lambda: requests.get(node.url + "/readyz", timeout=10).status_code == 503, timeout=20,
                   what="readyz to report the halted push")
        ready = node.ready().json()
        assert any("replication of ds halted" in p and "unauthorized_push" in p for p in ready["problems"]), ready
        # A caller without a monitor token learns only that the node is not ready.
        anonymous = requests.get(node.url + "/readyz", timeout=10)
        assert anonymous.status_code == 503 and anonymous.json() == {"status": "not_ready"}
        assert node.metrics()["cairn_replication_halted_datasets"] == 1
        stats = store.json("stats")["replication"]
        assert stats["halted_datasets"] == 1 and "unauthorized_push" in stats["pending"][0]["halted"]
        attempts = stats["pending"][0]["attempts"]
        # Halted means no more pushes: the hub's rejection count stays where it is.
        wait_until(lambda: store.json("stats")["replication"]["pending"][0]["attempts"] == attempts, timeout=5,
                   what="attempts to stay put")
        # Fixed at the hub, resumed on the node without a restart.
        hub.cli("enroll", "hospital-c", store.run("key", "show").stdout.decode().strip())
        assert store.json("node", "resume") == {"resumed": ["ds"]}
        wait_until(lambda: (hub.head("hospital-c", "ds") or {}).get("digest") == published["digest"], timeout=20,
                   what="the push after enrolment")
        wait_until(lambda: requests.get(node.url + "/readyz", timeout=10).status_code == 200, timeout=10, what="ready again")
    finally:
        if node:
            node.stop()
        hub.stop()


def test_small_cells_are_withheld_in_the_catalogue_and_dcat(tmp_path):
    corpus = tmp_path / "corpus"
    files = make_corpus(corpus, seed=6, ct=3, mr=1)
    store = Store(tmp_path / "data")
    store.run("init", "--node-id", "small")
    store.run("dataset", "create", *GATED, "tiny", "--cancer-type", "lung")
    store.run("ingest", "--dataset", "tiny", str(corpus))
    shown = store.json("dataset", "show", "tiny")
    assert 0 < shown["subjects"] < 50 and shown["studies"] < 50
    published = store.json("dataset", "publish", "tiny")
    hub = Hub(tmp_path / "hub", free_port())
    node = None
    try:
        hub.cli("enroll", "small", store.run("key", "show").stdout.decode().strip())
        node = Node(store, node_id="small", extra=("--hub", hub.url))
        wait_until(lambda: (hub.head("small", "tiny") or {}).get("digest") == published["digest"], timeout=20, what="sync")
        node.stop()
        node = None
        listed = hub.catalog.get(f"{hub.url}/v1/catalog/datasets", timeout=10).json()["datasets"][0]["summary"]
        assert listed["subjects"] == shown["subjects"]  # min_count 1 withholds nothing
        hub.stop()
        hub.configure(50)
        hub.start()
        for path in ("/v1/catalog/datasets", "/v1/catalog/datasets/tiny"):
            answer = hub.catalog.get(hub.url + path, timeout=10).json()
            summary = answer["datasets"][0]["summary"]
            assert answer["min_count"] == 50
            # Withheld keys are left out, not shown as null; no breakdown, no entry count.
            assert summary == {"suppressed": True}, summary
            assert "entries" not in answer["datasets"][0]
        dcat = hub.catalog.get(f"{hub.url}/v1/catalog/datasets/tiny/dcat", timeout=10).json()
        assert "healthdcatap:numberOfUniqueIndividuals" not in dcat and dcat["cairn:countsWithheld"] is True
        assert dcat["cairn:modalities"] == [] and dcat["dcat:keyword"] == [] and dcat["cairn:bodyParts"] == []
        counted = hub.catalog.post(f"{hub.url}/v1/catalog/count", json={"criteria": {}}, timeout=10).json()
        assert counted["datasets"] == [] and counted["total"] == {"subjects": 0, "studies": 0}
        assert len(files) > 0
    finally:
        if node:
            node.stop()
        hub.stop()


@pytest.mark.sqlite_index
def test_reads_stop_when_the_audit_log_cannot_keep_up(store, tmp_path):
    """Another process holds the index's write lock, so audit batches cannot be written: the node
    serves until `audit_max_pending` records wait, then refuses data requests with 503 (and says so
    in /readyz and /metrics) rather than serve them unaudited; when the lock goes, the records are
    written, reads resume, and the chain verifies with every served read in it."""
    import sqlite3
    blob = tmp_path / "x.bin"
    blob.write_bytes(bytes(range(256)) * 64)
    store.run("dataset", "create", *GATED, "ct", "--allow-non-dicom")
    store.run("ingest", "--dataset", "ct", str(blob))
    digest = sha256_digest(blob.read_bytes())
    node = Node(store, config={"audit_max_pending": 20, "audit_flush_milliseconds": 50})
    lock = sqlite3.connect(store.root / "index.sqlite", timeout=30, isolation_level=None)
    try:
        token = node.token(datasets="ct")
        assert node.get(f"/v1/blobs/{digest}", token).status_code == 200
        lock.execute("BEGIN EXCLUSIVE")
        statuses = []
        for _ in range(60):
            statuses.append(node.get(f"/v1/blobs/{digest}", token).status_code)
            if statuses[-1] == 503:
                break
        assert statuses[-1] == 503 and statuses.count(200) <= 20, statuses
        refused = node.get(f"/v1/blobs/{digest}", token)
        assert refused.status_code == 503 and refused.json()["error"] == "audit_unavailable"
        ready = node.ready()
        assert ready.status_code == 503 and any("audit records" in p for p in ready.json()["problems"])
        assert node.metrics()["cairn_audit_pending_records"] >= 20
        served = statuses.count(200) + 1
    finally:
        if lock.in_transaction:
            lock.execute("ROLLBACK")
        lock.close()
    try:
        wait_until(lambda: node.get(f"/v1/blobs/{digest}", token).status_code == 200, timeout=30,
                   what="reads to resume once the audit records are written")
        wait_until(lambda: node.metrics()["cairn_audit_pending_records"] == 0, timeout=10, what="the queue to drain")
    finally:
        node.stop()
    verified = store.json("audit", "verify")
    assert verified["ok"] is True
    reads = [r for r in store.ndjson("audit", "export") if r["action"] == "read" and r["digest"] == digest]
    assert len(reads) >= served + 1


def test_a_deflate_bomb_is_refused_by_its_ratio(tmp_path):
    """A Deflated Explicit VR Little Endian file whose data set holds 300 MB of zeros (about 300 kB
    deflated): the parser stops at 200 times what was sent instead of inflating it all, so reading
    it costs the process tens of MB, not hundreds, and the gate refuses it as uncheckable."""
    import struct
    import sys
    import zlib
    sys.path.insert(0, str(REPO / "Tools" / "gen"))
    from make_identifiable import deflated_header
    body = struct.pack("<HH2sHI", 0x0009, 0x1010, b"OB", 0, 300_000_000)
    compressor = zlib.compressobj(9, zlib.DEFLATED, -15)
    deflated = compressor.compress(body)
    chunk = bytes(1 << 20)
    for _ in range(300_000_000 // len(chunk)):
        deflated += compressor.compress(chunk)
    deflated += compressor.compress(bytes(300_000_000 % len(chunk))) + compressor.flush()
    bomb = tmp_path / "bomb.dcm"
    bomb.write_bytes(deflated_header() + deflated)
    assert bomb.stat().st_size < 1_000_000
    dump = subprocess.run([cairn_binary(), "dicom", "dump", str(bomb)], capture_output=True, timeout=120)
    assert dump.returncode != 0 and b"inflates past" in dump.stderr, dump.stderr
    store = Store(tmp_path / "data")
    store.run("init")
    refused = store.run("ingest", str(bomb), check=False)
    assert refused.returncode == 1 and b"cannot be checked" in refused.stderr and b"inflates past" in refused.stderr
    peak = peak_rss_of([cairn_binary(), "dicom", "dump", str(bomb)])
    print(f"cairn dicom dump of a 300 MB deflate bomb ({bomb.stat().st_size} bytes): peak RSS {peak / 2**20:.0f} MiB")
    assert peak < 150 * 2**20


def peak_rss_of(args):
    """Runs a command to its end and returns its own peak resident set size in bytes (wait4's rusage)."""
    import os
    pid = os.fork()
    if pid == 0:
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, 1)
        os.dup2(devnull, 2)
        os.execv(args[0], args)
    _, _, usage = os.wait4(pid, 0)
    return usage.ru_maxrss * 1024
