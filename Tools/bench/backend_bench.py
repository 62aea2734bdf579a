#!/usr/bin/env python3
"""Blob backends, same run, same corpus, same client: the node with its blobs on the local
filesystem against the node with its blobs in Ceph RGW (single host: mon, mgr, one memstore OSD,
radosgw, started here by Tools/ceph.sh).

- ingest: `cairn ingest --jobs 2` of the corpus into a fresh store, MB/s of original bytes;
- whole-file GETs (wrk, c=16), MB/s of original bytes;
- random 64 KiB ranges (wrk, c=32), requests/s and p50/p99;
- per request, the CPU seconds of the node and of each of Ceph's daemons (radosgw, the OSD, mon
  and mgr), from /proc over the runs: what the write-up of N servers and M OSDs starts from.

Each figure is the median of --reps runs. Run by `Tools/bench/run.sh --backends-only`.
"""
import argparse
import json
import os
import shutil
import signal
import statistics
import subprocess
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from serve_bench import OUT, RELEASE, REPO, free_port, lua_script, median_of, wait_http, wrk  # noqa: E402


def cpu_seconds(pids):
    total = 0
    tick = os.sysconf("SC_CLK_TCK")
    for pid in pids:
        with open(f"/proc/{pid}/stat") as f:
            fields = f.read().rsplit(")", 1)[1].split()
        total += (int(fields[11]) + int(fields[12])) / tick
    return total


def pids_of(names):
    out = subprocess.run(["pgrep", "-x", "|".join(names)], capture_output=True, text=True).stdout
    return [int(p) for p in out.split()]


class Store:
    """A fresh data directory, blobs on `config` (None: local files), the corpus ingested."""

    def __init__(self, name, files, work: Path, config: dict | None, jobs: int):
        self.data = work / f"{name}-data"
        shutil.rmtree(self.data, ignore_errors=True)
        self.env = dict(os.environ)
        if config:
            path = work / f"{name}.json"
            path.write_text(json.dumps(config))
            self.env["CAIRN_CONFIG"] = str(path)
        else:
            self.env.pop("CAIRN_CONFIG", None)
        self.run("init")
        self.run("dataset", "create", "bench", "--deid-policy", "accept")
        start = time.perf_counter()
        self.run("ingest", "--dataset", "bench", "--jobs", str(jobs), *map(str, files))
        self.ingest_seconds = time.perf_counter() - start
        self.token = self.run("token", "issue", "--subject", "bench", "--datasets", "bench", "--ttl", "1d").strip()
        entries = [json.loads(l) for l in self.run("ls", "--dataset", "bench", "--json").splitlines() if l.strip()]
        self.targets = [(f"/v1/blobs/{e['digest']}", e["size"]) for e in entries]
        self.proc = None

    def run(self, *args):
        return subprocess.run([str(RELEASE / "cairn"), *args, "--data", str(self.data)], capture_output=True, text=True,
                              check=True, env=self.env).stdout

    def serve(self, work: Path, name: str):
        self.port = free_port()
        self.log = open(work / f"{name}-node.log", "w")
        self.proc = subprocess.Popen([str(RELEASE / "cairn"), "node", "serve", "--data", str(self.data),
                                      "--listen", f"127.0.0.1:{self.port}"], stdout=self.log, stderr=self.log, env=self.env)
        self.url = f"http://127.0.0.1:{self.port}"
        wait_http(self.url + "/healthz")

    def stop(self):
        if self.proc:
            self.proc.send_signal(signal.SIGTERM)
            self.proc.wait(timeout=60)
            self.proc = None


def measure(name, store, mode, connections, args, ceph_pids):
    """ceph_pids: {"rgw": [...], "osd": [...], "other": [...]}; CPU per request of each and of the node."""
    script = OUT / f"wrk-backend-{name}-{mode}.lua"
    lua_script(script, store.targets, mode, store.token)
    runs = []
    for _ in range(args.reps):
        groups = {"node": [store.proc.pid], **ceph_pids}
        before = {k: cpu_seconds(v) for k, v in groups.items()}
        result = wrk(store.url, script, args.seconds, connections)
        if result["errors"] or result["non2xx"]:
            sys.exit(f"{name} {mode}: {result['errors']} socket errors, {result['non2xx']} non-2xx responses")
        for k, v in groups.items():
            result[f"{k}_cpu_us"] = (cpu_seconds(v) - before[k]) / result["requests"] * 1e6
        runs.append(result)
    keys = ["rps", "mbps", "p50_us", "p99_us"] + [f"{k}_cpu_us" for k in ("node", *ceph_pids)]
    return {k: median_of(runs, k) for k in keys}


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--corpus", type=Path, required=True)
    parser.add_argument("--reps", type=int, default=3)
    parser.add_argument("--seconds", type=int, default=10)
    parser.add_argument("--jobs", type=int, default=2)
    parser.add_argument("--ingest-reps", type=int, help="ingest runs per backend (default: --reps)")
    parser.add_argument("--files", type=int, default=300, help="corpus files used (the first N, sorted)")
    args = parser.parse_args()
    files = sorted(p for p in args.corpus.resolve().rglob("*") if p.is_file())[:args.files]
    total = sum(f.stat().st_size for f in files)
    work = OUT / "backends"
    work.mkdir(parents=True, exist_ok=True)
    print(f"corpus: {len(files)} files, {total / 1e6:.0f} MB")
    # A running Ceph (CAIRN_TEST_S3_ENDPOINT and AWS_* set, as Tools/ceph.sh prints them) is used
    # as it is; otherwise one is started here (one per host: its monitor takes the standard ports).
    ceph_dir = None
    if not (os.environ.get("CAIRN_TEST_S3_ENDPOINT") and os.environ.get("AWS_ACCESS_KEY_ID")):
        ceph_dir = work / "ceph"
        env_lines = subprocess.run([str(REPO / "Tools/ceph.sh"), "start", str(ceph_dir), str(free_port())],
                                   capture_output=True, text=True, check=True).stdout.splitlines()
        for line in env_lines:
            if line.startswith("export "):
                key, value = line[len("export "):].split("=", 1)
                os.environ[key] = value
    endpoint = os.environ["CAIRN_TEST_S3_ENDPOINT"]
    ceph_pids = {"rgw": pids_of(["radosgw"]), "osd": pids_of(["ceph-osd"]), "other": pids_of(["ceph-mon", "ceph-mgr"])}
    lines = []
    stores = {}
    try:
        ingest = {"file": [], "s3": []}
        for rep in range(args.ingest_reps or args.reps):
            for kind in ("file", "s3"):
                config = {"blob_store": f"s3://bench-{rep}-{time.time_ns() % 10**9}", "s3_endpoint": endpoint, "s3_allow_http": True} if kind == "s3" else None
                store = Store(kind, files, work, config, args.jobs)
                ingest[kind].append(total / store.ingest_seconds / 1e6)
                stores[kind] = store
                print(f"ingest {kind} rep {rep + 1}: {ingest[kind][-1]:.0f} MB/s", flush=True)
        results = {}
        for kind, store in stores.items():
            store.serve(work, kind)
            # Warm: the page cache for files, connections and RGW's caches for objects.
            warm = OUT / f"wrk-backend-warm-{kind}.lua"
            lua_script(warm, store.targets, "whole", store.token)
            wrk(store.url, warm, 3, 8)
            results[kind] = {"whole": measure(kind, store, "whole", 16, args, ceph_pids),
                             "range": measure(kind, store, "range", 32, args, ceph_pids)}
            store.stop()
        f, s = results["file"], results["s3"]
        ing_f, ing_s = statistics.median(ingest["file"]), statistics.median(ingest["s3"])
        ratio = lambda a, b: a / b if b else float("nan")
        lines += [
            f"## Blob backends (`Tools/bench/backend_bench.py`, wrk -t2, medians of {args.reps} x {args.seconds} s)",
            f"Corpus: {len(files)} files, {total / 1e6:.0f} MB; Ceph {ceph_version()} on this host (memstore OSD).",
            "",
            "| measure | local files | Ceph RGW | RGW / local | target |",
            "|---|---|---|---|---|",
            f"| ingest --jobs {args.jobs}, MB/s | {ing_f:.0f} | {ing_s:.0f} | {ratio(ing_s, ing_f):.2f}x | >= 0.5x |",
            f"| whole-file GETs, MB/s (c=16) | {f['whole']['mbps']:.0f} | {s['whole']['mbps']:.0f} | "
            f"{ratio(s['whole']['mbps'], f['whole']['mbps']):.2f}x | >= 0.7x |",
            f"| whole-file GETs, p50 / p99 ms | {f['whole']['p50_us'] / 1000:.1f} / {f['whole']['p99_us'] / 1000:.1f} | "
            f"{s['whole']['p50_us'] / 1000:.1f} / {s['whole']['p99_us'] / 1000:.1f} | | |",
            f"| random 64 KiB ranges, req/s (c=32) | {f['range']['rps']:.0f} | {s['range']['rps']:.0f} | "
            f"{ratio(s['range']['rps'], f['range']['rps']):.2f}x | >= 0.5x |",
            f"| random 64 KiB ranges, p50 / p99 ms | {f['range']['p50_us'] / 1000:.2f} / {f['range']['p99_us'] / 1000:.2f} | "
            f"{s['range']['p50_us'] / 1000:.2f} / {s['range']['p99_us'] / 1000:.2f} | | |",
            f"| CPU per 64 KiB range: node / RGW / OSD / mon+mgr, us | {f['range']['node_cpu_us']:.0f} | "
            f"{s['range']['node_cpu_us']:.0f} / {s['range']['rgw_cpu_us']:.0f} / {s['range']['osd_cpu_us']:.0f} / "
            f"{s['range']['other_cpu_us']:.0f} | | |",
            f"| CPU per whole file: node / RGW / OSD / mon+mgr, us | {f['whole']['node_cpu_us']:.0f} | "
            f"{s['whole']['node_cpu_us']:.0f} / {s['whole']['rgw_cpu_us']:.0f} / {s['whole']['osd_cpu_us']:.0f} / "
            f"{s['whole']['other_cpu_us']:.0f} | | |",
        ]
        print("\n".join(lines), flush=True)
    finally:
        for store in stores.values():
            store.stop()
        if ceph_dir:
            subprocess.run([str(REPO / "Tools/ceph.sh"), "stop", str(ceph_dir)], check=False)
    report = OUT / "backends-latest.md"
    report.write_text("\n".join(lines) + "\n")
    print(f"written to {report}")


def ceph_version():
    out = subprocess.run(["ceph", "--version"], capture_output=True, text=True).stdout.split()
    return out[2] if len(out) > 2 else "?"


if __name__ == "__main__":
    main()
