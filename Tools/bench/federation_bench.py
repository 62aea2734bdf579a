#!/usr/bin/env python3
"""Manifest and hub benchmarks (release build, loopback, synthetic entries as the issue allows).

- first full sync: a signed snapshot of N synthetic entries pushed to a fresh hub (zstd body,
  as the node's push worker sends it); time from PUT to the hub's 201, and bytes per entry;
- publish-to-hub latency: a real node with a dataset, 1,000 new files ingested, then the time
  from `cairn dataset publish` starting to the hub's head naming the new snapshot;
- count queries: a hub holding NODES x ENTRIES entries, and one holding SCALE-NODES x
  SCALE-ENTRIES, all pushed through intake, `POST /v1/catalog/count` p50/p95, then again after a
  restart of the hub (with the time it takes to start).

    Tools/bench/federation_bench.py [--entries 1000000] [--nodes 10] [--node-entries 100000]
                                    [--scale-nodes 30] [--scale-entries 1000000] [--parts ...]
"""
import argparse
import hashlib
import json
import multiprocessing
import os
import random
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import time
from pathlib import Path

import requests
from backports import zstd
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat

REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO / "Tools"))
from manifest_reference import b64url_encode, canonical, leaf_hash, merkle_root, push_headers  # noqa: E402
CAIRN = REPO / ".build" / "release" / "cairn"
OUT = REPO / "Tools" / "bench" / "out" / "federation"
def run_searches(hub, queries):
    """Federated searches as Focus POSTs them: one to three criteria (sex, modality, body part,
    manufacturer, diagnosis) of one or two catalogue codes each, in the UI's OR[AND[OR[...]]] shape."""
    token = subprocess.run([CAIRN, "hub", "grant", "--subject", "bench", "--scope", "search", "--data", hub.root],
                           check=True, capture_output=True, text=True).stdout.strip()
    codes = [("SNOMEDCT263495000", ["SNOMEDCT248153007", "SNOMEDCT248152002"]),
             ("RID10311", ["RID10312", "RID10321", "RID10337"]),
             ("SNOMEDCT123037004", ["SNOMEDCT39607008", "SNOMEDCT76752008", "SNOMEDCT12921003"]),
             ("C25392", ["C200140", "birnlex_12833", "birnlex_3065", "birnlex_3067"]),
             ("SNOMEDCT439401001", ["SNOMEDCT363358000", "SNOMEDCT254837009"])]
    rng = random.Random(7)
    latencies = []
    session = requests.Session()
    session.headers["Authorization"] = f"Bearer {token}"
    for i in range(queries):
        bars = [{"operand": "OR", "children": [{"key": key, "type": "EQUALS", "value": code}
                                               for code in rng.sample(values, rng.randint(1, 2))]}
                for key, values in rng.sample(codes, rng.randint(1, 3))] if i % 10 else []
        body = {"ast": {"operand": "OR", "children": [{"operand": "AND", "children": bars}] if bars else []}, "id": f"bench-{i}"}
        start = time.perf_counter()
        r = session.post(f"{hub.url}/eucaim/search", json=body, timeout=60)
        latencies.append(time.perf_counter() - start)
        assert r.status_code == 200, r.text
    return sorted(latencies)


MODALITIES = ["CT", "MR", "PT", "CR", "MG"]
BODY_PARTS = ["CHEST", "ABDOMEN", "HEAD", "BREAST", "PELVIS"]
MANUFACTURERS = ["SIEMENS", "GE MEDICAL SYSTEMS", "Philips", "TOSHIBA"]


def synthetic_entries(count, seed):
    rng = random.Random(seed)
    entries = []
    for i in range(count):
        subject = f"SUBJ-{seed}-{i // 200:06d}"
        study = f"1.2.826.0.1.{seed}.{i // 50}"
        entries.append({
            "digest": "sha256:" + hashlib.sha256(f"{seed}/{i}".encode()).hexdigest(), "size": rng.randrange(100_000, 600_000),
            "subject": subject, "study_uid": study, "series_uid": study + f".{i // 10 % 5}",
            "sop_instance_uid": study + f".{i}", "modality": MODALITIES[(i // 50) % 5], "body_part": BODY_PARTS[(i // 200) % 5],
            "manufacturer": MANUFACTURERS[(i // 50) % 4], "sex": "F" if (i // 200) % 2 else "M",
        })
    entries.sort(key=lambda e: e["digest"])
    return entries


def encode_entry(e):
    """`canonical(e)` for a synthetic entry, spelled out: keys in order, ASCII values, no escapes
    (a third of json.dumps' time at a million entries; checked against canonical() in snapshot)."""
    return (f'{{"body_part":"{e["body_part"]}","digest":"{e["digest"]}","manufacturer":"{e["manufacturer"]}",'
            f'"modality":"{e["modality"]}","series_uid":"{e["series_uid"]}","sex":"{e["sex"]}","size":{e["size"]},'
            f'"sop_instance_uid":"{e["sop_instance_uid"]}","study_uid":"{e["study_uid"]}","subject":"{e["subject"]}"}}').encode()


def snapshot(node, dataset, entries, key, cancer_type="lung", seq=1, parent=None, added=None, removed=()):
    """The signed canonical document for `entries` (the whole dataset, sorted by digest), adding
    `added` (default: all of them) and removing `removed`. Built without encoding the entries
    twice: "added" is the first member in key order, so the document is its array spliced in front
    of the other members."""
    encoded = [encode_entry(e) for e in entries]
    assert all(canonical(e) == encoded[i] for i, e in enumerate(entries[:100])), "encode_entry is not canonical"
    leaves = [leaf_hash(e) for e in encoded]
    encoded_added = encoded if added is None else [encode_entry(e) for e in added]
    rest = {"type": "cairn.snapshot/v1", "node": node, "dataset": dataset, "seq": seq, "parent": parent,
            "metadata": {"title": dataset, "cancer_type": cancer_type, "deid_policy": "reject", "searchable": True},
            "removed": sorted(removed), "entries": len(entries), "entries_root": merkle_root(leaves),
            "summary": {"subjects": len({e["subject"] for e in entries}), "studies": len({e["study_uid"] for e in entries}),
                        "series": 0, "instances": len(entries), "bytes": sum(e["size"] for e in entries),
                        "by_modality": {}, "by_body_part": {}, "by_manufacturer": {}, "by_sex": {}},
            "created_at": "2026-11-27T00:00:00Z"}
    added = b'{"added":[' + b",".join(encoded_added) + b"],"
    rest["signature"] = {"alg": "EdDSA", "kid": "bench", "sig": b64url_encode(key.sign(added + canonical(rest)[1:]))}
    data = added + canonical(rest)[1:]
    return "sha256:" + hashlib.sha256(data).hexdigest(), data


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Hub:
    def __init__(self, root):
        shutil.rmtree(root, ignore_errors=True)
        root.mkdir(parents=True)
        self.root = root
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.log = open(root / "hub.log", "wb")
        self.start()
        self.catalog_token = subprocess.run([CAIRN, "hub", "grant", "--subject", "bench", "--scope", "catalog", "--data", root],
                                            check=True, capture_output=True, text=True).stdout.strip()

    def start(self):
        self.proc = subprocess.Popen([CAIRN, "hub", "serve", "--data", self.root, "--listen", f"127.0.0.1:{self.port}"],
                                     stdout=subprocess.PIPE, stderr=self.log)
        assert "listening" in self.proc.stdout.readline().decode()

    def enroll(self, node, key):
        raw = key.public_key().public_bytes(Encoding.Raw, PublicFormat.Raw)
        subprocess.run([CAIRN, "hub", "enroll", node, b64url_encode(raw), "--data", self.root], check=True, capture_output=True)

    def push(self, node, dataset, digest, data, key):
        body = zstd.compress(data)
        start = time.perf_counter()
        r = requests.put(f"{self.url}/v1/nodes/{node}/datasets/{dataset}/snapshots/{digest}", data=body,
                         headers=push_headers(key, node, dataset, digest, body, **{"Content-Encoding": "zstd",
                                                                                   "Content-Type": "application/json"}),
                         timeout=600)
        elapsed = time.perf_counter() - start
        assert r.status_code == 201, r.text
        return elapsed, len(body)

    def stop(self):
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            self.proc.wait(timeout=60)


def first_full_sync(entries_count, lines):
    """The first full sync, then a delta on top of it: 1,000 entries added and 100 removed (the
    hub recomputes the root over its whole copy of the dataset)."""
    hub = Hub(OUT / "hub-sync")
    try:
        key = Ed25519PrivateKey.generate()
        hub.enroll("big-node", key)
        entries = synthetic_entries(entries_count, seed=1)
        digest, data = snapshot("big-node", "big", entries, key)
        elapsed, wire = hub.push("big-node", "big", digest, data, key)
        lines.append(f"| first full sync of {entries_count:,} entries (PUT to 201, verify + apply + root) | {elapsed:.1f} s | <= 10 s |")
        lines.append(f"| snapshot on the wire, per entry (zstd; canonical JSON {len(data) / entries_count:.0f} B) | "
                     f"{wire / entries_count:.1f} B | |")
        added = synthetic_entries(1000, seed=2)
        removed = {e["digest"] for e in random.Random(3).sample(entries, 100)}
        after = sorted([e for e in entries if e["digest"] not in removed] + added, key=lambda e: e["digest"])
        digest, data = snapshot("big-node", "big", after, key, seq=2, parent=digest, added=added, removed=removed)
        elapsed, _ = hub.push("big-node", "big", digest, data, key)
        lines.append(f"| then a delta of 1,000 added + 100 removed onto those {entries_count:,} (PUT to 201) | "
                     f"{elapsed * 1000:.0f} ms | |")
    finally:
        hub.stop()


def publish_latency(lines, reps):
    hub = Hub(OUT / "hub-latency")
    data = OUT / "node-latency"
    shutil.rmtree(data, ignore_errors=True)
    run = lambda *a: subprocess.run([CAIRN, *map(str, a), "--data", data], check=True, capture_output=True, text=True)
    run("init")
    run("dataset", "create", "live", "--deid-policy", "accept")
    key = run("key", "show").stdout.strip()
    subprocess.run([CAIRN, "hub", "enroll", "latency-node", key, "--data", hub.root], check=True, capture_output=True)
    log = open(OUT / "node-latency.log", "wb")
    node = subprocess.Popen([CAIRN, "node", "serve", "--data", data, "--listen", "127.0.0.1:0", "--node-id", "latency-node",
                             "--hub", hub.url], stdout=subprocess.PIPE, stderr=log)
    assert "listening" in node.stdout.readline().decode()
    try:
        results = []
        for rep in range(reps):
            batch = OUT / f"batch{rep}"
            shutil.rmtree(batch, ignore_errors=True)
            batch.mkdir()
            for i in range(1000):
                (batch / f"f{i}").write_bytes(os.urandom(64) + f"{rep}/{i}".encode())
            run("ingest", "--dataset", "live", batch)
            start = time.perf_counter()
            published = json.loads(run("dataset", "publish", "live", "--json").stdout)
            publish_done = time.perf_counter()
            while True:
                r = requests.get(f"{hub.url}/v1/nodes/latency-node/datasets/live/head", timeout=10)
                if r.status_code == 200 and r.json()["digest"] == published["digest"]:
                    break
                time.sleep(0.002)
            results.append((publish_done - start, time.perf_counter() - start))
        lines.append(f"| publish of 1,000 new instances, `dataset publish` alone (median of {reps}) | "
                     f"{statistics.median(r[0] for r in results) * 1000:.0f} ms | |")
        lines.append(f"| publish of 1,000 new instances until the hub's head names it (median of {reps}) | "
                     f"{statistics.median(r[1] for r in results) * 1000:.0f} ms | <= 200 ms |")
    finally:
        node.send_signal(signal.SIGTERM)
        node.wait(timeout=60)
        hub.stop()


def node_snapshot(args):
    """Worker: one node's signed, zstd-compressed snapshot of per_node synthetic entries."""
    n, per_node = args
    key = Ed25519PrivateKey.generate()
    digest, data = snapshot(f"node{n}", f"ds{n}", synthetic_entries(per_node, seed=100 + n), key,
                            cancer_type=["lung", "breast", "prostate"][n % 3])
    # The private key goes back too: the push is signed when it is sent (its time must be current).
    return n, key.private_bytes_raw(), digest, zstd.compress(data)


def count_latency(nodes, per_node, lines, queries, target=""):
    """Every node's snapshot pushed through intake (built two at a time in worker processes while
    the hub takes the previous ones), then count queries; then the hub restarted, to time loading
    the counts' working set, and the queries again."""
    hub = Hub(OUT / f"hub-count-{nodes}x{per_node}")
    try:
        intake = []
        with multiprocessing.Pool(2) as pool:
            for n, private, digest, body in pool.imap(node_snapshot, [(n, per_node) for n in range(nodes)]):
                key = Ed25519PrivateKey.from_private_bytes(private)
                public = key.public_key().public_bytes(Encoding.Raw, PublicFormat.Raw)
                subprocess.run([CAIRN, "hub", "enroll", f"node{n}", b64url_encode(public), "--data", hub.root], check=True, capture_output=True)
                start = time.perf_counter()
                r = requests.put(f"{hub.url}/v1/nodes/node{n}/datasets/ds{n}/snapshots/{digest}", data=body,
                                 headers=push_headers(key, f"node{n}", f"ds{n}", digest, body,
                                                      **{"Content-Encoding": "zstd", "Content-Type": "application/json"}),
                                 timeout=600)
                assert r.status_code == 201, r.text
                intake.append(time.perf_counter() - start)
        latencies = run_counts(hub, queries)
        searches = run_searches(hub, queries)
        hub.stop()
        start = time.perf_counter()
        hub.start()
        started = time.perf_counter() - start
        restarted = run_counts(hub, queries)
        label = f"{nodes} nodes x {per_node:,} entries, all through intake"
        lines.append(f"| count query, {label}, p50 / p95 ({queries} queries) | {ms(latencies, 0.5)} / {ms(latencies, 0.95)} ms | {target} |")
        lines.append(f"| EUCAIM search (`POST /eucaim/search`), {label}, p50 / p95 ({queries} queries) | "
                     f"{ms(searches, 0.5)} / {ms(searches, 0.95)} ms | {target} |")
        lines.append(f"| same, after a restart (counts loaded from the facets table) | {ms(restarted, 0.5)} / {ms(restarted, 0.95)} ms | |")
        lines.append(f"| hub start with {nodes * per_node:,} entries (to listening, counts loaded) | {started:.1f} s | |")
        lines.append(f"| intake of each {per_node:,}-entry snapshot, median of {nodes} | {statistics.median(intake):.1f} s | |")
    finally:
        hub.stop()


def ms(latencies, quantile):
    return f"{latencies[min(int(len(latencies) * quantile), len(latencies) - 1)] * 1000:.1f}"


def run_counts(hub, queries):
    rng = random.Random(5)
    latencies = []
    session = requests.Session()
    session.headers["Authorization"] = f"Bearer {hub.catalog_token}"
    for i in range(queries):
        # A mix: one to four instance criteria with one or two values each, half with a cancer type,
        # and every tenth query with no criteria at all (every facet matches: the slowest).
        criteria = {}
        if i % 10:
            for key, values in rng.sample([("modality", MODALITIES), ("sex", ["F", "M"]), ("body_part", BODY_PARTS),
                                           ("manufacturer", MANUFACTURERS)], rng.randint(1, 4)):
                criteria[key] = rng.sample(values, rng.randint(1, 2))
            if rng.random() < 0.5:
                criteria["cancer_type"] = ["lung", "breast"]
        start = time.perf_counter()
        r = session.post(f"{hub.url}/v1/catalog/count", json={"criteria": criteria}, timeout=60)
        latencies.append(time.perf_counter() - start)
        assert r.status_code == 200
    return sorted(latencies)


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--entries", type=int, default=1_000_000)
    parser.add_argument("--nodes", type=int, default=10)
    parser.add_argument("--node-entries", type=int, default=100_000)
    parser.add_argument("--reps", type=int, default=5)
    parser.add_argument("--queries", type=int, default=100)
    parser.add_argument("--parts", default="publish,sync,count,scale", help="which measurements, comma-separated")
    parser.add_argument("--scale-nodes", type=int, default=30)
    parser.add_argument("--scale-entries", type=int, default=1_000_000)
    args = parser.parse_args()
    parts = set(args.parts.split(","))
    OUT.mkdir(parents=True, exist_ok=True)
    lines = ["## Manifests and hub (`Tools/bench/federation_bench.py`)", "", "| measure | result | target |", "|---|---|---|"]
    print("\n".join(lines), flush=True)
    if "publish" in parts:
        publish_latency(lines, args.reps)
        print("\n".join(lines[-2:]), flush=True)
    if "sync" in parts:
        first_full_sync(args.entries, lines)
        print("\n".join(lines[-3:]), flush=True)
    if "count" in parts:
        count_latency(args.nodes, args.node_entries, lines, args.queries)
        print("\n".join(lines[-4:]), flush=True)
    if "scale" in parts:
        count_latency(args.scale_nodes, args.scale_entries, lines, args.queries, target="<= 100 ms p95")
        print("\n".join(lines[-4:]), flush=True)
    (REPO / "Tools" / "bench" / "out" / "federation-latest.md").write_text("\n".join(lines) + "\n")


if __name__ == "__main__":
    main()
