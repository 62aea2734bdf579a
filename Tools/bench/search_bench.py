#!/usr/bin/env python3
"""Federated search latency on a node with many instances (issue 12's target: p95 <= 50 ms at
1,000,000 instances). The instance rows are written straight into the node's index with sqlite3
(ingesting a million files would measure ingest, not search); everything else is the real node:
`cairn init`, `dataset create --searchable`, `node serve`, and queries POSTed as Focus sends them
over one kept-alive connection. Prints the first query (which reads the facets into memory) and
p50/p95 of the rest.

    .venv/bin/python Tools/bench/search_bench.py [--instances 1000000] [--queries 200] [--seed 1]
"""
import argparse
import http.client
import json
import os
import random
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
SECRET = "bench-search-secret-0123456789"
SEXES = ["M", "F", "F", "M", "O", None]
MODALITIES = ["CT", "CT", "MR", "PT", "NM", "DX"]
BODY_PARTS = ["CHEST", "LUNG", "BREAST", "PELVIS", "PROSTATE", "ABDOMEN", "HEAD", None]
MANUFACTURERS = ["SIEMENS", "GE MEDICAL SYSTEMS", "Philips", "TOSHIBA", "Canon Medical Systems"]


def fill(index_path, instances, rng):
    """Instances as a provider has them: subjects with one to three studies of a few series."""
    db = sqlite3.connect(index_path)
    rows, subject, n = [], 0, 0
    while n < instances:
        subject += 1
        sex, age = rng.choice(SEXES), float(rng.randrange(25, 95))
        for study in range(rng.randrange(1, 4)):
            for series in range(rng.randrange(1, 6)):
                modality, body, maker = rng.choice(MODALITIES), rng.choice(BODY_PARTS), rng.choice(MANUFACTURERS)
                for _ in range(rng.randrange(5, 60)):
                    if n == instances:
                        break
                    rows.append(("bench", f"{n:064x}", f"S{subject:07d}", f"1.2.{subject}.{study}", f"1.2.{subject}.{study}.{series}",
                                 sex, modality, body, maker, age))
                    n += 1
    db.executemany("""INSERT INTO instances (dataset_id, digest, subject, study_uid, series_uid, sex, modality, body_part,
                      manufacturer, age_years) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)""", rows)
    db.commit()
    db.close()
    return subject


def query(rng):
    keys = [("SNOMEDCT263495000", ["SNOMEDCT248153007", "SNOMEDCT248152002"]),
            ("RID10311", ["RID10312", "RID10321", "RID10337", "RID10334"]),
            ("SNOMEDCT123037004", ["SNOMEDCT39607008", "SNOMEDCT76752008", "SNOMEDCT41216001"]),
            ("C25392", ["C200140", "birnlex_12833", "birnlex_3065"]),
            ("SNOMEDCT439401001", ["SNOMEDCT363358000"])]
    bars = []
    for key, codes in rng.sample(keys, rng.randrange(1, 4)):
        bars.append({"operand": "OR", "children": [{"key": key, "type": "EQUALS", "value": c}
                                                   for c in rng.sample(codes, rng.randrange(1, 3) if len(codes) > 1 else 1)]})
    if rng.random() < 0.5:
        low = float(rng.randrange(30, 70))
        bars.append({"operand": "OR", "children": [{"key": "SNOMEDCT423493009", "type": "BETWEEN",
                                                    "value": {"min": low, "max": rng.choice([0.0, low + 20])}}]})
    return {"ast": {"operand": "OR", "children": [{"operand": "AND", "children": bars}]}, "id": "bench"}


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--instances", type=int, default=1_000_000)
    parser.add_argument("--queries", type=int, default=200)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--binary", default=str(REPO / ".build" / "release" / "cairn"))
    args = parser.parse_args()
    rng = random.Random(args.seed)
    print(f"seed {args.seed}")
    with tempfile.TemporaryDirectory(prefix="cairn-search-bench-") as tmp:
        data = Path(tmp) / "data"
        run = lambda *a: subprocess.run([args.binary, *a, "--data", str(data)], check=True, capture_output=True)
        run("init", "--node-id", "bench")
        run("dataset", "create", "bench", "--cancer-type", "lung", "--searchable")
        started = time.monotonic()
        subjects = fill(data / "index.sqlite", args.instances, rng)
        print(f"{args.instances:,} instance rows of {subjects:,} subjects written in {time.monotonic() - started:.1f} s")
        config = Path(tmp) / "node.json"
        config.write_text(json.dumps({"search_secret": SECRET, "min_count": 5}))
        node = subprocess.Popen([args.binary, "node", "serve", "--data", str(data), "--listen", "127.0.0.1:0", "--config", str(config)],
                                stdout=subprocess.PIPE, stderr=subprocess.DEVNULL)
        try:
            url = node.stdout.readline().decode().split("listening on ")[1].split()[0]
            host, port = url.removeprefix("http://").split(":")
            conn = http.client.HTTPConnection(host, int(port), timeout=120)

            def ask(body):
                start = time.perf_counter()
                conn.request("POST", "/eucaim/search", body=json.dumps(body),
                             headers={"Authorization": "Secret " + SECRET, "Content-Type": "application/json"})
                response = conn.getresponse()
                payload = response.read()
                assert response.status == 200, payload[:300]
                return time.perf_counter() - start, json.loads(payload)

            first, answer = ask({"ast": {"operand": "OR", "children": []}})
            print(f"first query (reads the facets): {first * 1000:.0f} ms; everything: "
                  f"{answer['total']['subjects_count']:,} subjects, {answer['total']['studies_count']:,} studies")
            times = [ask(query(rng))[0] * 1000 for _ in range(args.queries)]
            times.sort()
            p95 = times[int(0.95 * (len(times) - 1))]
            print(f"{args.queries} mixed queries: p50 {statistics.median(times):.1f} ms, p95 {p95:.1f} ms, max {times[-1]:.1f} ms "
                  f"(target p95 <= 50 ms)")
            with open(f"/proc/{node.pid}/status") as f:
                rss = next(int(line.split()[1]) for line in f if line.startswith("VmHWM:"))
            print(f"node peak RSS {rss / 1024:.0f} MiB")
        finally:
            node.terminate()
            node.wait(timeout=30)


if __name__ == "__main__":
    sys.exit(main())
