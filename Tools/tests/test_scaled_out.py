"""Two node servers over one index and one blob store (run against Ceph RGW in Tools/test.sh's S3
pass, and against local files in the default pass): either serves what the other took in, a
revocation reaches both within a second, kill -9 of one mid-ingest loses no acknowledged write,
gc next to ingest loses nothing, and only one of them pushes snapshots to the hub."""
import json
import os
import random
import shutil
import subprocess
import sys
import threading
import time

import pytest
import requests

from conftest import GATED, BLOB_STORE, INDEX, REPO, Store, cairn_binary, image_like, sha256_digest, wait_until
from node import Node
from test_federation import Hub, free_port, make_corpus

CONFIG = {"clock_skew_seconds": 0, "audit_flush_milliseconds": 50, "disk_low_water_bytes": 0}


def second_host(store):
    """Where the second server runs: with the index in PostgreSQL and the blobs in S3, a data
    directory of its own, as on another host (`init` there joins the store; the node's signing key
    is copied, as an operator provisions it); otherwise the same directory (SQLite is one host's)."""
    if not (INDEX == "postgres" and BLOB_STORE == "s3"):
        return store
    other = Store(store.root.parent / "host-b", config=store.config)
    shutil.copytree(store.root / "keys", other.root / "keys")
    assert "initialised" in other.run("init").stdout.decode()
    return other


@pytest.fixture
def pair(store):
    store.run("dataset", "create", *GATED, "ct", "--allow-non-dicom")
    servers = [Node(host, node_id="shared-node", config=CONFIG) for host in (store, second_host(store))]
    yield servers
    for server in servers:
        if server.proc.poll() is None:
            assert server.stop() == 0


def upload(server, token, body):
    return requests.post(f"{server.url}/v1/datasets/ct/instances", data=body, headers=server.headers(token), timeout=60)


def test_either_server_serves_what_the_other_took_in(pair):
    a, b = pair
    ingest, read = a.token(scope="ingest"), a.token()
    bodies = {}
    for i in range(12):
        body = image_like(50_000 + 7_919 * i, seed=i)
        server = pair[i % 2]
        r = upload(server, ingest, body)
        assert r.status_code == 201, r.text
        bodies[r.json()["digest"]] = body
    for digest, body in bodies.items():
        for server in pair:
            assert server.get(f"/v1/blobs/{digest}", read).content == body
            part = server.get(f"/v1/blobs/{digest}", read, headers={"Range": "bytes=1000-40999"})
            assert part.status_code == 206 and part.content == body[1000:41000]
            tail = server.get(f"/v1/blobs/{digest}", read, headers={"Range": "bytes=-777"})
            assert tail.status_code == 206 and tail.content == body[-777:]


def test_a_revocation_reaches_the_other_server_within_a_second(pair):
    a, b = pair
    token = a.token()
    body = image_like(30_000, seed=1)
    assert upload(a, a.token(scope="ingest"), body).status_code == 201
    path = f"/v1/blobs/{sha256_digest(body)}"
    assert a.get(path, token).status_code == 200 and b.get(path, token).status_code == 200
    a.store.run("token", "revoke", token["jti"])
    start = time.monotonic()
    wait_until(lambda: b.get(path, token).status_code == 401 and a.get(path, token).status_code == 401, timeout=5,
               what="both servers to refuse the revoked token")
    elapsed = time.monotonic() - start
    print(f"revocation refused by both servers after {elapsed:.2f} s")
    # Each server reads new revocations once a second (0.7 s measured here); the bound leaves room
    # for a loaded CI machine without letting a server that never polls pass.
    assert elapsed < 2.5, f"revocation took {elapsed:.2f} s"


def test_kill_minus_nine_mid_ingest_loses_no_acknowledged_write(pair):
    a, b = pair
    ingest, read = a.token(scope="ingest"), a.token()
    acknowledged, stop = {}, threading.Event()

    def writer():
        i = 0
        while not stop.is_set():
            body = image_like(200_000 + i, seed=1000 + i)
            try:
                r = upload(a, ingest, body)
            except requests.RequestException:
                return
            if r.status_code == 201:
                acknowledged[r.json()["digest"]] = body
            i += 1

    thread = threading.Thread(target=writer)
    thread.start()
    wait_until(lambda: len(acknowledged) >= 10, timeout=60, what="ten acknowledged uploads")
    a.proc.kill()
    a.proc.wait()
    stop.set()
    thread.join()
    for digest, body in acknowledged.items():
        assert b.get(f"/v1/blobs/{digest}", read).content == body
    report = a.store.json("verify")
    assert report["clean"] and report["checked"] >= len(acknowledged), report
    # Every row has its blob (verify above). The upload in flight at the kill may have committed
    # before its answer was sent; nothing else is listed.
    assert len(a.store.ndjson("ls", "--dataset", "ct")) - len(acknowledged) in (0, 1)


def test_gc_next_to_ingest_loses_nothing(pair):
    """gc collects blobs no dataset holds while writers store new bytes and, racing it, the very
    bytes it is collecting: every acknowledged write reads back, and verify is clean."""
    a, b = pair
    ingest, read = a.token(scope="ingest"), a.token()
    # Blobs that no dataset holds any more: what gc is for.
    dropped_bodies = [image_like(40_000, seed=5000 + i) for i in range(40)]
    dropped = [upload(a, ingest, body).json()["digest"] for body in dropped_bodies]
    for d in dropped:
        a.store.index_sql("DELETE FROM dataset_blobs WHERE digest = ?", (d.removeprefix("sha256:"),))
    acknowledged, errors, stop = {}, [], threading.Event()

    def writer(server, bodies):
        try:
            for body in bodies:
                if stop.is_set():
                    return
                r = upload(server, ingest, body)
                if r.status_code != 201:
                    errors.append(f"{r.status_code} {r.text}")
                    return
                acknowledged[r.json()["digest"]] = body
        except Exception as e:  # noqa: BLE001 - reported below, in the test's thread
            errors.append(repr(e))

    fresh = (image_like(100_000 + i, seed=2000 + i) for i in range(10_000))
    # The dropped bytes again and again, so that re-uploads land before, between and after gc's steps.
    again = (dropped_bodies[i % len(dropped_bodies)] for i in range(10_000))
    threads = [threading.Thread(target=writer, args=(b, fresh)), threading.Thread(target=writer, args=(a, again))]
    for thread in threads:
        thread.start()
    collected = []
    try:
        for _ in range(5):
            collected += a.store.json("gc")["unreferenced"]
    finally:
        stop.set()
        for thread in threads:
            thread.join()
    assert not errors, errors
    assert set(collected) <= set(dropped) and collected, collected
    assert len(acknowledged) > 0
    for digest, body in acknowledged.items():
        assert a.get(f"/v1/blobs/{digest}", read).content == body
    report = a.store.json("verify")
    assert report["clean"] and report["checked"] >= len(acknowledged), report


def test_only_one_server_pushes_snapshots_and_the_other_takes_over(store, tmp_path):
    hub = Hub(tmp_path / "hub", free_port())
    servers = []
    try:
        store.run("dataset", "create", *GATED, "lung", "--publish-attributes", "subject,modality")
        make_corpus(tmp_path / "corpus", seed=8, ct=3, mr=1)
        store.run("ingest", "--dataset", "lung", str(tmp_path / "corpus"))
        hub.cli("enroll", "shared-node", store.run("key", "show").stdout.decode().strip())
        servers = [Node(store, node_id="shared-node", config=CONFIG, extra=("--hub", hub.url)) for _ in range(2)]
        published = []
        for seed in (9, 10, 11):
            make_corpus(tmp_path / f"more{seed}", seed=seed, ct=1, mr=0)
            store.run("ingest", "--dataset", "lung", str(tmp_path / f"more{seed}"))
            published.append(store.json("dataset", "publish", "lung"))
            wait_until(lambda: (hub.head("shared-node", "lung") or {}).get("digest") == published[-1]["digest"],
                       timeout=30, what=f"the hub to hold snapshot {len(published)}")
        pushers = [s for s in servers if "this server pushes snapshots" in s.log_path.read_text(errors="replace")]
        assert len(pushers) == 1, [s.log_path.read_text(errors="replace")[-2000:] for s in servers]
        records = [json.loads(line) for line in hub.cli("audit", "export", "--json").splitlines()]
        actions = [r["action"] for r in records if r["action"].startswith("snapshot.")]
        # Each snapshot arrived once: a second pusher would have been refused as out of order.
        assert actions == ["snapshot.apply"] * len(published), actions
        # The pusher stops; the other server takes the lease at once and pushes the next snapshot.
        assert pushers[0].stop() == 0
        other = next(s for s in servers if s is not pushers[0])
        make_corpus(tmp_path / "last", seed=12, ct=1, mr=0)
        store.run("ingest", "--dataset", "lung", str(tmp_path / "last"))
        last = store.json("dataset", "publish", "lung")
        wait_until(lambda: (hub.head("shared-node", "lung") or {}).get("digest") == last["digest"], timeout=30,
                   what="the remaining server to push")
        assert "this server pushes snapshots" in other.log_path.read_text(errors="replace")
    finally:
        for server in servers:
            if server.proc.poll() is None:
                server.stop()
        hub.stop()


def test_no_secret_reaches_a_log_or_an_error(pair):
    a, b = pair
    assert upload(a, a.token(scope="ingest"), image_like(10_000, seed=3)).status_code == 201
    for server in pair:
        server.stop()
        secret = os.environ.get("AWS_SECRET_ACCESS_KEY")
        if secret:
            assert secret not in server.log_path.read_text(errors="replace")


def test_storage_configuration_is_checked_before_anything_is_done(tmp_path):
    data = tmp_path / "data"
    endpoint = os.environ.get("CAIRN_TEST_S3_ENDPOINT", "http://127.0.0.1:9")

    def cairn(config, *args, env=None):
        nonlocal data
        path = tmp_path / "storage.json"
        path.write_text(json.dumps(config))
        return subprocess.run([cairn_binary(), *args, "--data", str(data), "--config", str(path)], capture_output=True,
                              text=True, env=env)

    refused = [
        ({"index": "postgres://cairn:hunter2@db:5432/cairn"}, "no password in the URL"),
        ({"index": "mysql://cairn@db/cairn"}, "must be `sqlite` or postgres://"),
        ({"index": "postgres://cairn@db:5432"}, "must name a database"),
        ({"index_allow_plaintext": True}, "is for a postgres:// index"),
        ({"blob_store": "s3://cairn-blobs"}, "needs s3_endpoint"),
        ({"blob_store": "s3://Bad_Bucket", "s3_endpoint": endpoint}, "bucket name 'Bad_Bucket'"),
        ({"blob_store": "s3://cairn-blobs", "s3_endpoint": "http://rgw:7480"}, "is plain HTTP; use https://"),
        ({"blob_store": "file", "s3_endpoint": "https://rgw"}, "s3_* keys with blob_store `file`"),
        ({"blob_store": "gs://cairn-blobs"}, "must be `file` or `s3://BUCKET`"),
        ({"blob_stor": "s3://cairn-blobs"}, "unknown keys blob_stor"),
        ({"blob_store": "s3://cairn-blobs", "s3_endpoint": "ftp://x"}, "must be http(s)://HOST[:PORT]"),
    ]
    for config, message in refused:
        r = cairn(config, "init")
        assert r.returncode == 2 and message in r.stderr, (config, r.returncode, r.stderr)
        assert "hunter2" not in r.stderr
        assert not data.exists(), "a refused configuration must not create the store"
    # An index that cannot be reached, or only without TLS when TLS was not waived, creates nothing.
    unreachable = cairn({"index": "postgres://cairn@127.0.0.1:9/cairn", "index_allow_plaintext": True}, "init")
    assert unreachable.returncode != 0 and "index database unreachable" in unreachable.stderr, unreachable.stderr
    assert not data.exists()
    if "CAIRN_TEST_PG_URL" in os.environ:
        plaintext = cairn({"index": os.environ["CAIRN_TEST_PG_URL"] + "/postgres"}, "init")
        assert plaintext.returncode != 0 and "index database unreachable" in plaintext.stderr, plaintext.stderr
        assert not data.exists(), "a PostgreSQL server without TLS must be refused unless index_allow_plaintext says so"
    s3 = {"blob_store": f"s3://cairn-config-{random.getrandbits(40):010x}", "s3_endpoint": endpoint, "s3_allow_http": True}
    no_credentials = {k: v for k, v in os.environ.items() if not k.startswith("AWS_")}
    r = cairn(s3, "init", env=no_credentials)
    assert r.returncode != 0 and "AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY" in r.stderr, r.stderr
    if "CAIRN_TEST_S3_ENDPOINT" in os.environ:
        wrong = {**os.environ, "AWS_SECRET_ACCESS_KEY": "wrong-secret-hunter3"}
        r = cairn(s3, "init", env=wrong)
        assert r.returncode == 1 and "HTTP 403" in r.stderr and "hunter3" not in r.stderr, r.stderr
        assert not data.exists(), "a node that cannot authenticate to its bucket must not create the store"
    # A store made with files refuses to open as S3, and the other way round.
    assert cairn({"blob_store": "file"}, "init").returncode == 0
    r = cairn(s3, "ls")
    assert r.returncode == 2 and "keeps its blobs in file" in r.stderr, r.stderr
    if "CAIRN_TEST_S3_ENDPOINT" in os.environ:
        # One bucket, one store: a second store is refused the bucket the first claimed.
        data = tmp_path / "first"
        assert cairn(s3, "init").returncode == 0
        data = tmp_path / "second"
        r = cairn(s3, "init")
        assert r.returncode == 2 and "already holds Cairn store" in r.stderr, r.stderr
        assert not data.exists()


def s3_client():
    import boto3
    return boto3.client("s3", endpoint_url=os.environ["CAIRN_TEST_S3_ENDPOINT"], region_name="us-east-1",
                        aws_access_key_id=os.environ["AWS_ACCESS_KEY_ID"],
                        aws_secret_access_key=os.environ["AWS_SECRET_ACCESS_KEY"])


def bucket_of(store):
    return json.loads(open(store.config).read())["blob_store"].removeprefix("s3://")


s3_only = pytest.mark.skipif(os.environ.get("CAIRN_TEST_BLOB_STORE") != "s3", reason="blobs in S3 only (Tools/test.sh's S3 pass)")


@s3_only
def test_a_stock_s3_client_sees_blob_files_the_reference_decoder_restores(store, tmp_path):
    """The bucket holds the blob files under their paths, as `blobs/` would: boto3 lists and
    downloads them, and Tools/blob_decode.py (no Cairn code) restores each original."""
    store.run("dataset", "create", *GATED, "ct", "--allow-non-dicom")
    originals = {}
    for i, body in enumerate([image_like(300_000, seed=70), random.Random(71).randbytes(90_000), image_like(2_000_001, seed=72)]):
        path = tmp_path / f"in{i}.bin"
        path.write_bytes(body)
        originals[sha256_digest(body)] = body
        store.run("ingest", "--dataset", "ct", str(path))
    s3 = s3_client()
    keys = sorted(o["Key"] for o in s3.list_objects_v2(Bucket=bucket_of(store))["Contents"])
    expected = sorted("blobs/sha256/{0}/{1}/{2}".format(d[7:9], d[9:11], d[7:]) for d in originals)
    assert keys == sorted(expected + ["cairn-store-id"])
    for digest, body in originals.items():
        assert store.run("path", digest).stdout.decode().strip() == f"s3://{bucket_of(store)}/blobs/sha256/{digest[7:9]}/{digest[9:11]}/{digest[7:]}"
        blob = tmp_path / "blob"
        s3.download_file(bucket_of(store), f"blobs/sha256/{digest[7:9]}/{digest[9:11]}/{digest[7:]}", str(blob))
        out = tmp_path / "restored"
        subprocess.run([sys.executable, str(REPO / "Tools/blob_decode.py"), str(blob), "-o", str(out)], check=True)
        assert out.read_bytes() == body


@s3_only
def test_a_damaged_or_missing_object_is_a_clean_error_never_bytes(store):
    store.run("dataset", "create", *GATED, "ct", "--allow-non-dicom")
    server = Node(store, node_id="n", config=CONFIG)
    try:
        read, ingest = server.token(), server.token(scope="ingest")
        damaged, missing = image_like(400_000, seed=80), image_like(400_000, seed=81)
        for body in (damaged, missing):
            assert upload(server, ingest, body).status_code == 201
        s3, bucket = s3_client(), bucket_of(store)
        key = lambda d: f"blobs/sha256/{d[7:9]}/{d[9:11]}/{d[7:]}"
        stored = bytearray(s3.get_object(Bucket=bucket, Key=key(sha256_digest(damaged)))["Body"].read())
        stored[100] ^= 0x5A
        s3.put_object(Bucket=bucket, Key=key(sha256_digest(damaged)), Body=bytes(stored))
        s3.delete_object(Bucket=bucket, Key=key(sha256_digest(missing)))
        for body in (damaged, missing):
            # Before any header: a 500 with the reason, not a 200 cut short.
            r = server.get(f"/v1/blobs/{sha256_digest(body)}", read, headers={"Accept-Encoding": "identity"})
            assert r.status_code == 500, (r.status_code, len(r.content))
        # A client that takes the stored zstd frames checks them itself (their own checksums): it refuses them.
        with pytest.raises(requests.exceptions.ContentDecodingError):
            server.get(f"/v1/blobs/{sha256_digest(damaged)}", read, headers={"Accept-Encoding": "zstd"})
        verify = store.run("verify", "--json", check=False)
        assert verify.returncode == 1, verify.stderr
        report = json.loads(verify.stdout)
        states = {p["digest"]: p["state"] for p in report["problems"]}
        assert states == {sha256_digest(damaged): "corrupt", sha256_digest(missing): "missing"}, report
        # The same bytes stored again repair both.
        for body in (damaged, missing):
            assert upload(server, ingest, body).status_code == 201
            assert server.get(f"/v1/blobs/{sha256_digest(body)}", read).content == body
    finally:
        server.stop()
