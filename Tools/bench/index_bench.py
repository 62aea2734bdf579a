#!/usr/bin/env python3
"""Index engines, same run, same corpus, same client: the node with its index in SQLite (the
embedded default) against the node with its index in PostgreSQL 15 (a private server started
here by Tools/postgres.sh, on this host, fsync on; blobs on local files for both).

- ingest: `cairn ingest --jobs 2` of the corpus into a fresh store, files/s and MB/s;
- count queries through the node's API (wrk, c=4): the dataset summary (`GET /v1/datasets/ID`:
  count and sums over the dataset's blobs) and a QIDO-RS study search (`/dicomweb/ID/studies?limit=10`:
  ten studies with their series and instance counts, three statements each);
- random 64 KiB ranges (wrk, c=32): one index lookup per request, then the blob file;
- per request, the CPU of the node and of PostgreSQL's processes, from /proc over the runs.

Each figure is the median of --reps runs. Run by `Tools/bench/run.sh --index-only`.
"""
import argparse
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from backend_bench import Store, cpu_seconds, pids_of  # noqa: E402
from serve_bench import OUT, REPO, free_port, lua_script, median_of, wrk  # noqa: E402


def postgres_cpu_seconds():
    """CPU of every PostgreSQL process, the backends that already exited included: they come and
    go with connections, and the postmaster's children times (cutime, cstime) hold the ones it
    has reaped. A process that vanishes while being read is skipped."""
    total = 0
    tick = os.sysconf("SC_CLK_TCK")
    for pid in pids_of(["postgres"]):
        try:
            with open(f"/proc/{pid}/stat") as f:
                fields = f.read().rsplit(")", 1)[1].split()
        except FileNotFoundError:
            continue
        total += sum(int(x) for x in fields[11:15]) / tick
    return total


def new_database(server: str) -> dict:
    """A new, empty database on `server` and the storage config naming it."""
    database = f"bench_{time.time_ns()}"
    subprocess.run(["psql", "-q", "-v", "ON_ERROR_STOP=1", f"{server}/postgres", "-c", f"CREATE DATABASE {database}"],
                   check=True, capture_output=True)
    return {"index": f"{server}/{database}", "index_allow_plaintext": True}


def measure(name, store, mode, targets, connections, args):
    script = OUT / f"wrk-index-{name}-{mode}.lua"
    lua_script(script, targets, "range" if mode == "range" else "whole", store.token)
    runs = []
    for _ in range(args.reps):
        before = cpu_seconds([store.proc.pid]), postgres_cpu_seconds()
        result = wrk(store.url, script, args.seconds, connections)
        if result["errors"] or result["non2xx"]:
            sys.exit(f"{name} {mode}: {result['errors']} socket errors, {result['non2xx']} non-2xx responses")
        result["node_cpu_us"] = (cpu_seconds([store.proc.pid]) - before[0]) / result["requests"] * 1e6
        result["postgres_cpu_us"] = (postgres_cpu_seconds() - before[1]) / result["requests"] * 1e6
        runs.append(result)
    return {k: median_of(runs, k) for k in ["rps", "p50_us", "p99_us", "node_cpu_us", "postgres_cpu_us"]}


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--corpus", type=Path, required=True)
    parser.add_argument("--reps", type=int, default=3)
    parser.add_argument("--seconds", type=int, default=10)
    parser.add_argument("--jobs", type=int, default=2)
    args = parser.parse_args()
    files = sorted(p for p in args.corpus.resolve().rglob("*") if p.is_file())
    total = sum(f.stat().st_size for f in files)
    work = OUT / "index"
    work.mkdir(parents=True, exist_ok=True)
    print(f"corpus: {len(files)} files, {total / 1e6:.0f} MB")
    # A running server (CAIRN_TEST_PG_URL, as Tools/postgres.sh prints it) is used as it is.
    pg_dir = None
    server = os.environ.get("CAIRN_TEST_PG_URL")
    if not server:
        # Under /tmp: the server runs as `postgres`, which may not reach into the clone.
        pg_dir = Path(tempfile.mkdtemp(prefix="cairn-bench-pg."))
        out = subprocess.run([str(REPO / "Tools/postgres.sh"), "start", str(pg_dir), str(free_port())],
                             capture_output=True, text=True, check=True).stdout
        server = out.strip().split("=", 1)[1]
    lines, stores = [], {}
    try:
        ingest = {"sqlite": [], "postgres": []}
        for rep in range(args.reps):
            for kind in ("sqlite", "postgres"):
                store = Store(kind, files, work, new_database(server) if kind == "postgres" else None, args.jobs)
                ingest[kind].append(store.ingest_seconds)
                stores[kind] = store
                print(f"ingest {kind} rep {rep + 1}: {len(files) / store.ingest_seconds:.0f} files/s", flush=True)
        results = {}
        for kind, store in stores.items():
            store.serve(work, kind)
            summary = [("/v1/datasets/bench", 0)]
            studies = [("/dicomweb/bench/studies?limit=10", 0)]
            wrk(store.url, warm_script(store), 3, 8)  # the page cache and the index's caches
            results[kind] = {"summary": measure(kind, store, "summary", summary, 4, args),
                             "studies": measure(kind, store, "studies", studies, 4, args),
                             "range": measure(kind, store, "range", store.targets, 32, args)}
            store.stop()
        sq, pg = results["sqlite"], results["postgres"]
        ing_sq, ing_pg = statistics.median(ingest["sqlite"]), statistics.median(ingest["postgres"])
        lines += [
            f"## Index engines (`Tools/bench/index_bench.py`, wrk -t2, medians of {args.reps} x {args.seconds} s)",
            f"Corpus: {len(files)} files, {total / 1e6:.0f} MB; PostgreSQL {pg_version()} on this host (fsync on); "
            "blobs on local files for both.",
            "",
            "| measure | SQLite | PostgreSQL | PostgreSQL / SQLite | target |",
            "|---|---|---|---|---|",
            f"| ingest --jobs {args.jobs}, files/s | {len(files) / ing_sq:.0f} | {len(files) / ing_pg:.0f} | "
            f"{ing_sq / ing_pg:.2f}x | >= 0.7x |",
            f"| ingest --jobs {args.jobs}, MB/s | {total / ing_sq / 1e6:.0f} | {total / ing_pg / 1e6:.0f} | | |",
        ]
        for key, label in (("summary", "dataset summary (count, sums), req/s (c=4)"),
                           ("studies", "QIDO-RS 10 studies with counts, req/s (c=4)"),
                           ("range", "random 64 KiB ranges, req/s (c=32)")):
            a, b = sq[key], pg[key]
            target = "within 2x" if key != "range" else ""
            lines.append(f"| {label} | {a['rps']:.0f} | {b['rps']:.0f} | {b['rps'] / a['rps']:.2f}x | {target} |")
            lines.append(f"| {key}: p50 / p99 ms | {a['p50_us'] / 1000:.2f} / {a['p99_us'] / 1000:.2f} | "
                         f"{b['p50_us'] / 1000:.2f} / {b['p99_us'] / 1000:.2f} | | |")
            lines.append(f"| {key}: CPU per request, node / PostgreSQL, us | {a['node_cpu_us']:.0f} | "
                         f"{b['node_cpu_us']:.0f} / {b['postgres_cpu_us']:.0f} | | |")
        print("\n".join(lines), flush=True)
    finally:
        for store in stores.values():
            store.stop()
        if pg_dir:
            subprocess.run([str(REPO / "Tools/postgres.sh"), "stop", str(pg_dir)], check=False)
            shutil.rmtree(pg_dir, ignore_errors=True)
    report = OUT / "index-latest.md"
    report.write_text("\n".join(lines) + "\n")
    print(f"written to {report}")


def warm_script(store):
    script = OUT / "wrk-index-warm.lua"
    lua_script(script, store.targets, "whole", store.token)
    return script


def pg_version():
    out = subprocess.run(["psql", "--version"], capture_output=True, text=True).stdout.split()
    return out[2] if len(out) > 2 else "?"


if __name__ == "__main__":
    main()
