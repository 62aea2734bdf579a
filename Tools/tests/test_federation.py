"""Three nodes and one hub as separate processes on loopback: publish, converge, and every fault
the manifests issue names. Counts are checked against pydicom reading the files."""
import hashlib
import json
import os
import signal
import socket
import subprocess
import sys

import pydicom
import pytest
import requests
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from conftest import GATED, REPO, Store, cairn_binary, tmpfs, wait_until
from node import Node
from manifest_reference import b64url_decode, b64url_encode, canonical, entries_root, push_headers


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Hub:
    def __init__(self, root, port, min_count=1):
        self.root, self.port = root, port
        self.url = f"http://127.0.0.1:{port}"
        self.configure(min_count)
        self.start()
        # Catalogue and count queries need a token with the catalog scope from the hub's own key.
        self.catalog = requests.Session()
        self.catalog.headers["Authorization"] = "Bearer " + self.cli("grant", "--subject", "tests", "--scope", "catalog")

    def configure(self, min_count, **extra):
        """The hub's config file; the pydicom comparisons need every count (min_count 1)."""
        self.config = self.root.parent / "hub.json"
        self.config.write_text(json.dumps({"listen": f"127.0.0.1:{self.port}", "min_count": min_count, **extra}))

    def start(self):
        self.log = open(self.root.parent / "hub.log", "ab")
        self.proc = subprocess.Popen([cairn_binary(), "hub", "serve", "--data", str(self.root), "--config", str(self.config)],
                                     stdout=subprocess.PIPE, stderr=self.log)
        line = self.proc.stdout.readline().decode()
        assert "listening on" in line, line

    def cli(self, *args):
        proc = subprocess.run([cairn_binary(), "hub", *args, "--data", str(self.root)], capture_output=True)
        assert proc.returncode == 0, proc.stderr.decode()
        return proc.stdout.decode().strip()

    def head(self, node, dataset):
        r = requests.get(f"{self.url}/v1/nodes/{node}/datasets/{dataset}/head", timeout=10)
        return r.json() if r.status_code == 200 else None

    def kill(self):
        self.proc.send_signal(signal.SIGKILL)
        self.proc.wait()

    def stop(self):
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            assert self.proc.wait(timeout=30) == 0


def make_corpus(out, seed, ct, mr):
    subprocess.run([sys.executable, str(REPO / "Tools/gen/make_corpus.py"), str(out), "--ct", str(ct), "--mr", str(mr),
                    "--dx", "1", "--jpeg", "1", "--seed", str(seed)], check=True, capture_output=True)
    return sorted(p for p in out.rglob("*") if p.is_file())


@pytest.fixture
def federation(tmp_path):
    hub = Hub(tmp_path / "hub", free_port())
    nodes, files = [], {}
    try:
        for i, cancer in enumerate(["lung", "breast", "lung"]):
            (tmp_path / f"node{i}").mkdir()
            store = Store(tmp_path / f"node{i}" / "data")
            store.run("init")
            store.run("dataset", "create", *GATED, f"ds{i}", "--cancer-type", cancer, "--title", f"Dataset {i}")
            files[f"ds{i}"] = make_corpus(tmp_path / f"corpus{i}", seed=20 + i, ct=6 + 2 * i, mr=3)
            store.run("ingest", "--dataset", f"ds{i}", str(tmp_path / f"corpus{i}"))
            hub.cli("enroll", f"node{i}", store.run("key", "show").stdout.decode().strip())
            nodes.append(Node(store, node_id=f"node{i}", extra=("--hub", hub.url)))
        yield hub, nodes, files
    finally:
        for n in nodes:
            n.stop()
        hub.stop()


def node_id(n):
    return n.store.root.parent.name


def test_publish_converges_and_counts_match_pydicom(federation):
    hub, nodes, files = federation
    for i, n in enumerate(nodes):
        n.published = n.store.json("dataset", "publish", f"ds{i}")
    for i, n in enumerate(nodes):
        wait_until(lambda: (hub.head(node_id(n), f"ds{i}") or {}).get("digest") == n.published["digest"], timeout=20, what=f"node{i}")
    # Catalogue and filters.
    catalog = hub.catalog.get(f"{hub.url}/v1/catalog/datasets", timeout=10).json()["datasets"]
    assert sorted(d["id"] for d in catalog) == ["ds0", "ds1", "ds2"]
    lung = hub.catalog.get(f"{hub.url}/v1/catalog/datasets", params={"cancer_type": "lung"}, timeout=10).json()["datasets"]
    assert sorted(d["id"] for d in lung) == ["ds0", "ds2"]
    only = hub.catalog.get(f"{hub.url}/v1/catalog/datasets", params=[("node", "node1"), ("modality", "MR")], timeout=10).json()
    assert [d["id"] for d in only["datasets"]] == ["ds1"]
    # Count queries against pydicom.
    headers = {ds: [pydicom.dcmread(p, stop_before_pixels=True) for p in fs] for ds, fs in files.items()}
    cancer = {"ds0": "lung", "ds1": "breast", "ds2": "lung"}

    def expected(criteria):
        out = {}
        for ds, items in headers.items():
            if "cancer_type" in criteria and cancer[ds] not in criteria["cancer_type"]:
                continue
            keep = [d for d in items
                    if all(getattr(d, attr, None) in criteria[key] for key, attr in
                           [("sex", "PatientSex"), ("modality", "Modality"), ("body_part", "BodyPartExamined"),
                            ("manufacturer", "Manufacturer")] if key in criteria)]
            if keep:
                out[ds] = (len({d.PatientID for d in keep}), len({d.StudyInstanceUID for d in keep}))
        return out

    for criteria in [{}, {"modality": ["MR"]}, {"modality": ["CT", "MR"], "cancer_type": ["lung"]},
                     {"sex": ["F"], "modality": ["CT"]}, {"sex": ["M", "F"], "cancer_type": ["breast", "lung"]}]:
        answer = hub.catalog.post(f"{hub.url}/v1/catalog/count", json={"criteria": criteria}, timeout=10).json()
        got = {d["id"]: (d["subjects"], d["studies"]) for d in answer["datasets"]}
        assert got == expected(criteria), criteria
        assert answer["total"]["subjects"] == sum(s for s, _ in got.values())
    assert hub.catalog.post(f"{hub.url}/v1/catalog/count", json={"criteria": {"name": ["x"]}}, timeout=10).status_code == 400
    dcat = hub.catalog.get(f"{hub.url}/v1/catalog/datasets/ds1/dcat", timeout=10).json()
    assert dcat["@type"] == "dcat:Dataset" and dcat["dct:publisher"]["foaf:name"] == "node1"
    assert dcat["healthdcatap:numberOfUniqueIndividuals"] == len({d.PatientID for d in headers["ds1"]})
    assert dcat["healthdcatap:healthTheme"] == "breast"
    # Small cells withheld: with min_count above the smallest dataset's subject count, those below it
    # are left out altogether (a dataset listed as withheld would say one to min_count - 1 people
    # match) and out of the totals; any others are unchanged.
    everything = expected({})
    threshold = min(s for s, _ in everything.values()) + 1
    hub.stop()
    hub.configure(threshold)
    hub.start()
    answer = hub.catalog.post(f"{hub.url}/v1/catalog/count", json={"criteria": {}}, timeout=10).json()
    assert answer["min_count"] == threshold
    released = {i: c for i, c in everything.items() if c[0] >= threshold and c[1] >= threshold}
    assert len(released) < len(everything)
    assert {d["id"]: (d["subjects"], d["studies"]) for d in answer["datasets"]} == released
    assert all("suppressed" not in d for d in answer["datasets"])
    assert answer["total"] == {"subjects": sum(s for s, _ in released.values()), "studies": sum(t for _, t in released.values())}


def test_faults_are_refused_and_nothing_applied(federation, tmp_path):
    hub, nodes, files = federation
    n = nodes[0]
    first = n.store.json("dataset", "publish", "ds0")
    wait_until(lambda: (hub.head("node0", "ds0") or {}).get("digest") == first["digest"], timeout=20, what="first push")
    doc1 = n.get("/v1/datasets/ds0/snapshots/latest", n.token(datasets="ds0")).content
    # Pushes by hand, signed (the Cairn-Push header) with the node's own key.
    seed = b64url_decode((n.store.root / "keys" / "node.ed25519").read_text().strip())
    key = Ed25519PrivateKey.from_private_bytes(seed)
    put = lambda node, dataset, digest, body: requests.put(
        f"{hub.url}/v1/nodes/{node}/datasets/{dataset}/snapshots/{digest}", data=body,
        headers=push_headers(key, node, dataset, digest, body), timeout=10)
    # The same snapshot twice: a no-op.
    again = put("node0", "ds0", first["digest"], doc1)
    assert again.status_code == 200 and again.json()["applied"] is False
    # A second snapshot, then the first replayed: refused with the hub's head.
    subject = pydicom.dcmread(files["ds0"][0], stop_before_pixels=True).PatientID
    n.store.run("dataset", "erase-subject", "ds0", subject)
    second = n.store.json("dataset", "publish", "ds0")
    wait_until(lambda: (hub.head("node0", "ds0") or {}).get("digest") == second["digest"], timeout=20, what="erasure push")
    replay = put("node0", "ds0", first["digest"], doc1)
    assert replay.status_code == 409 and replay.json()["head"]["seq"] == 2
    # The erasure reached the hub: the subject is gone from the counts.
    counts = hub.catalog.post(f"{hub.url}/v1/catalog/count", json={"criteria": {}}, timeout=10).json()
    remaining = {pydicom.dcmread(p, stop_before_pixels=True).PatientID for p in files["ds0"]} - {subject}
    assert next(d for d in counts["datasets"] if d["id"] == "ds0")["subjects"] == len(remaining)
    # Hand-made third snapshots signed with the node's own key.
    head_doc = json.loads(n.get("/v1/datasets/ds0/snapshots/latest", n.token(datasets="ds0")).content)
    state_root = head_doc["entries_root"]
    extra = {"digest": "sha256:" + "ab" * 32, "size": 1, "modality": "CT"}

    def forge(root, sign_with=key, seq=3, parent=second["digest"], added=(extra,)):
        body = {k: v for k, v in head_doc.items() if k != "signature"}
        body.update(seq=seq, parent=parent, added=list(added), removed=[], entries=head_doc["entries"] + len(added),
                    entries_root=root)
        sig = sign_with.sign(canonical(body))
        body["signature"] = {"alg": "EdDSA", "kid": head_doc["signature"]["kid"], "sig": b64url_encode(sig)}
        data = canonical(body)
        return "sha256:" + hashlib.sha256(data).hexdigest(), data

    # Tampered delta: valid signature, but the entries root does not match the entries.
    digest, data = forge(state_root)
    r = put("node0", "ds0", digest, data)
    assert r.status_code == 422 and "entries root" in r.json()["detail"]
    # Forged signature: another key.
    digest, data = forge(state_root, sign_with=Ed25519PrivateKey.generate())
    assert put("node0", "ds0", digest, data).status_code == 403
    # Out of order (a gap).
    digest, data = forge(state_root, seq=5)
    assert put("node0", "ds0", digest, data).status_code == 409
    # A digest that is not the body's, and an unenrolled node.
    assert put("node0", "ds0", "sha256:" + "00" * 32, doc1).status_code == 422
    assert put("ghost", "ds0", first["digest"], doc1).status_code == 403
    # Nothing of that was applied.
    assert hub.head("node0", "ds0") == {"digest": second["digest"], "seq": 2}
    assert r.json()["error"] == "refused"


def test_hub_and_node_restarts_mid_push(federation):
    hub, nodes, files = federation
    n = nodes[1]
    hub.kill()
    published = n.store.json("dataset", "publish", "ds1")

    def backing_off():
        """The replication stats once the node has failed to push to the dead hub (and lags)."""
        replication = n.store.json("stats")["replication"]
        return replication if replication["failed_attempts"] >= 1 and replication["lag_seconds"] > 0 else None

    waiting = wait_until(backing_off, timeout=20, what="a failed push to the dead hub")
    assert waiting["pending_datasets"] == 1
    assert n.metrics()["cairn_replication_failures_total"] >= 1
    hub.start()
    wait_until(lambda: (hub.head("node1", "ds1") or {}).get("digest") == published["digest"], timeout=40, what="resume after hub restart")
    # Kill the node right after a publish, restart it: the outbox survives.
    m = nodes[2]
    m.proc.send_signal(signal.SIGKILL)
    m.proc.wait()
    m.store.run("dataset", "create", *GATED, "ds2", "--title", "Dataset 2 renamed")
    second = m.store.json("dataset", "publish", "ds2")
    restarted = Node(m.store, node_id="node2", extra=("--hub", hub.url))
    nodes[2] = restarted
    wait_until(lambda: (hub.head("node2", "ds2") or {}).get("digest") == second["digest"], timeout=40, what="resume after node restart")
    assert hub.head("node2", "ds2")["seq"] == second["seq"]
    wait_until(lambda: n.store.json("stats")["replication"]["pending_datasets"] == 0, timeout=20, what="outbox drained")
    metrics = restarted.metrics()
    assert metrics["cairn_replication_lag_seconds"] == 0 or metrics["cairn_replication_lag_seconds"] < 5


def test_hub_grants_a_job_on_a_node_that_trusts_it(federation, tmp_path):
    hub, nodes, files = federation
    n = nodes[0]
    n.stop()
    hub_key = hub.cli("key")
    trusting = Node(n.store, node_id="node0", config={"trusted_issuers": [{"name": "hub", "public_key": hub_key}]})
    nodes[0] = trusting
    token = hub.cli("grant", "--subject", "job-42", "--datasets", "ds0", "--node", "node0", "--ttl", "1h")
    entries = trusting.get("/v1/datasets/ds0/entries", token)
    assert entries.status_code == 200 and entries.text.count("\n") == len(files["ds0"])
    other = hub.cli("grant", "--subject", "job-42", "--datasets", "ds0", "--node", "node1", "--ttl", "1h")
    assert trusting.get("/v1/datasets/ds0/entries", other).status_code == 401


def test_catalogue_needs_a_catalog_token(federation, tmp_path):
    """Deny by default: no token, a job token, a token from another key, or a node's own token are
    refused; a catalog token from this hub works (and is logged by subject, never by value); a
    catalog token does not open a node that trusts the hub; open_catalog serves without tokens."""
    hub, nodes, files = federation
    url = f"{hub.url}/v1/catalog/count"
    refused = requests.post(url, json={"criteria": {}}, timeout=10)
    assert refused.status_code == 401 and "hub grant --scope catalog" in refused.json()["detail"]
    job = hub.cli("grant", "--subject", "job-7", "--datasets", "ds0", "--node", "node0")
    stranger = subprocess.run([cairn_binary(), "hub", "grant", "--subject", "x", "--scope", "catalog",
                               "--data", str(tmp_path / "other-hub")], capture_output=True, text=True, check=True).stdout.strip()
    node_token = nodes[0].store.run("token", "issue", "--subject", "s", "--datasets", "ds0").stdout.decode().strip()
    for token in [job, stranger, node_token, "Bearer", "not.a.token"]:
        r = requests.post(url, json={"criteria": {}}, headers={"Authorization": f"Bearer {token}"}, timeout=10)
        assert r.status_code == 401, (token[:20], r.text)
    granted = hub.catalog.post(url, json={"criteria": {}}, timeout=10)
    assert granted.status_code == 200
    for path in ["/v1/catalog/datasets", "/v1/catalog/datasets/ds0", "/v1/catalog/datasets/ds0/dcat"]:
        assert requests.get(hub.url + path, timeout=10).status_code == 401
    catalog_token = hub.catalog.headers["Authorization"].split()[1]
    log = (hub.root.parent / "hub.log").read_text()
    assert "subject=tests" in log and catalog_token not in log and job not in log
    bad = subprocess.run([cairn_binary(), "hub", "grant", "--subject", "x", "--scope", "catalog", "--node", "n",
                          "--data", str(hub.root)], capture_output=True, text=True)
    assert bad.returncode != 0 and "no --datasets or --node" in bad.stderr
    # A node that trusts the hub's key does not take a catalog token as a read token.
    n = nodes[0]
    n.stop()
    trusting = Node(n.store, node_id="node0", config={"trusted_issuers": [{"name": "hub", "public_key": hub.cli("key")}]})
    nodes[0] = trusting
    assert trusting.get("/v1/datasets/ds0/entries", catalog_token).status_code in (401, 403)
    hub.stop()
    hub.configure(1, open_catalog=True)
    hub.start()
    assert requests.post(url, json={"criteria": {}}, timeout=10).status_code == 200


def test_hub_on_a_full_disk_refuses_with_507_and_keeps_serving(tmp_path):
    """A 60,000-entry snapshot pushed to a hub whose data sits on a 4 MiB tmpfs: a real ENOSPC
    inside the intake transaction is a 507, nothing is applied, and the hub keeps answering."""
    with tmpfs(tmp_path / "disk", "4m") as mount:
        hub = Hub(mount / "hub", free_port())
        try:
            key = Ed25519PrivateKey.generate()
            hub.cli("enroll", "big", b64url_encode(key.public_key().public_bytes_raw()))
            entries = sorted(({"digest": "sha256:" + hashlib.sha256(str(i).encode()).hexdigest(), "size": i,
                               "subject": f"S{i % 500}", "study_uid": f"1.2.{i % 2000}", "modality": "CT"}
                              for i in range(60_000)), key=lambda e: e["digest"])
            doc = {"type": "cairn.snapshot/v1", "node": "big", "dataset": "ds", "seq": 1, "parent": None, "metadata": {},
                   "added": entries, "removed": [], "entries": len(entries), "entries_root": entries_root(entries),
                   "summary": {}, "created_at": "2026-11-27T00:00:00Z"}
            doc["signature"] = {"alg": "EdDSA", "kid": "k",
                                "sig": b64url_encode(key.sign(canonical(doc)))}
            body = canonical(doc)
            digest = "sha256:" + hashlib.sha256(body).hexdigest()
            r = requests.put(f"{hub.url}/v1/nodes/big/datasets/ds/snapshots/{digest}", data=body,
                             headers=push_headers(key, "big", "ds", digest, body), timeout=120)
            assert r.status_code == 507, r.text
            assert r.json()["error"] == "disk_full"
            assert hub.head("big", "ds") is None
            assert requests.get(f"{hub.url}/healthz", timeout=10).status_code == 200
        finally:
            hub.stop()


def test_enroll_takes_a_key_that_begins_with_a_dash(tmp_path):
    """One base64url key in 64 begins with '-': `hub enroll` must not take it for an option."""
    while True:
        key = b64url_encode(Ed25519PrivateKey.generate().public_key().public_bytes_raw())
        if key.startswith("-"):
            break
    out = subprocess.run([cairn_binary(), "hub", "enroll", "node-x", key, "--data", str(tmp_path / "hub"), "--json"],
                         capture_output=True, text=True)
    assert out.returncode == 0, out.stderr
    assert json.loads(out.stdout) == {"node": "node-x", "enrolled": True}
    bad = subprocess.run([cairn_binary(), "hub", "enroll", "node-y", "--data", str(tmp_path / "hub")], capture_output=True, text=True)
    assert bad.returncode != 0 and "one public key" in bad.stderr
