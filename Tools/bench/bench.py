#!/usr/bin/env python3
"""Store benchmarks against the bare work, measured in the same run (Tools/bench/run.sh runs this).

Anchors: `zstd -b3` (per-file level-3 compression and decompression, in memory, one core: the
speed no store can beat) and `sha256sum`. Cairn figures: `cairn ingest --jobs N` (hash, compress,
write, fsync, index), stored size against per-file `zstd -3`, whole-blob reads on one core, random
64 KiB ranges per second on one core at frame sizes 64 KiB / 256 KiB / 1 MiB.
Each figure is the median of --reps runs; the machine is shared and noisy.
"""
import argparse
import json
import os
import re
import shutil
import statistics
import subprocess
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
RELEASE = REPO / ".build" / "release"


def sh(*args, **kwargs):
    return subprocess.run([str(a) for a in args], capture_output=True, text=True, check=True, **kwargs)


def corpus_files(corpus: Path):
    return sorted(p for p in corpus.rglob("*") if p.is_file())


def zstd_bench(files, reps):
    """Median compress and decompress MB/s and total compressed bytes of `zstd -b3` (one core)."""
    comp, decomp, sizes = [], [], []
    for _ in range(reps):
        out = subprocess.run(["zstd", "-b3", "-i2", "-T1", *map(str, files)], capture_output=True, text=True)
        text = out.stdout + out.stderr
        match = re.findall(r"-?3#?.*?:?\s+(\d+)\s+->\s+(\d+)\s+\(x?([\d.]+)\),\s*([\d.]+)\s*MB/s,?\s+([\d.]+)\s*MB/s", text)
        if not match:
            match = re.findall(r"(\d+)\s+->\s+(\d+)\s+\(x?([\d.]+)\),\s*([\d.]+)\s*MB/s\s*,?\s*([\d.]+)\s*MB/s", text)
        if not match:
            fallback = re.findall(r"-3\s+(\d+)\s+\(x?([\d.]+)\)\s+([\d.]+)\s*MB/s\s+([\d.]+)\s*MB/s", text)
            if not fallback:
                sys.exit(f"cannot parse zstd -b3 output:\n{text}")
            compressed, _, c, d = fallback[-1]
        else:
            _, compressed, _, c, d = match[-1]
        sizes.append(int(compressed))
        comp.append(float(c))
        decomp.append(float(d))
    return statistics.median(comp), statistics.median(decomp), statistics.median(sizes)


def sha256sum_speed(files, total_bytes, reps):
    times = []
    for _ in range(reps):
        start = time.monotonic()
        sh("sha256sum", *files)
        times.append(time.monotonic() - start)
    return total_bytes / statistics.median(times) / 1e6


def cairn(*args):
    return sh(RELEASE / "cairn", *args)


def ingest_runs(corpus, work, jobs, reps, frame_size=None):
    """Median ingest MB/s into a fresh store; returns (MB/s, summary of the last run, store path)."""
    speeds, summary = [], None
    for rep in range(reps):
        # A new directory each time: deleting a store just before writing the next one makes ext4
        # hunt past recently freed inodes, which no long-lived store pays for.
        data = work / f"store-{frame_size or 'default'}-{rep}-{time.monotonic_ns()}"
        init = ["init", "--data", data] + (["--frame-size", str(frame_size)] if frame_size else [])
        cairn(*init)
        # Ungated: ../shared/dicom carries test patients' names, which the default dataset refuses.
        cairn("dataset", "create", "bench", "--deid-policy", "accept", "--data", data)
        sh("sync")
        summary = json.loads(cairn("ingest", "--json", "--jobs", str(jobs), "--dataset", "bench", "--data", data,
                                   corpus).stdout)
        assert summary["failed"] == 0, summary
        speeds.append(summary["bytes_in"] / summary["seconds"] / 1e6)
    return statistics.median(speeds), summary, data


def bench_tool(*args):
    return json.loads(sh(RELEASE / "cairn-bench", *args).stdout)


def median_of(reps, fn, key):
    return statistics.median(fn()[key] for _ in range(reps))


def run(corpus: Path, work: Path, reps: int, jobs: int, range_seconds: float, label: str):
    files = corpus_files(corpus)
    total = sum(p.stat().st_size for p in files)
    for p in files:  # warm the page cache, as zstd -b reads into memory too
        p.read_bytes()
    rows = []
    print(f"\n## {label}: {len(files)} files, {total / 1e6:.1f} MB, {reps} reps, medians\n", flush=True)
    z_comp, z_decomp, z_size = zstd_bench(files, reps)
    sha = sha256sum_speed(files, total, reps)
    ingest, summary, data = ingest_runs(corpus, work, jobs, reps)
    read_all = median_of(reps, lambda: bench_tool("read-all", data), "mb_per_s")
    target = 0.7 * jobs * z_comp
    rows.append(("ingest --jobs %d (MB/s)" % jobs, f"{ingest:.0f}", f"zstd -b3 compress x{jobs}: {jobs * z_comp:.0f}",
                 f"{ingest / (jobs * z_comp):.2f}x", ">= 0.70x"))
    rows.append(("stored bytes", f"{summary['bytes_stored']}", f"per-file zstd -3: {z_size}",
                 f"{summary['bytes_stored'] / z_size:.3f}x", "<= 1.03x"))
    rows.append(("whole-blob read, 1 core (MB/s)", f"{read_all:.0f}", f"zstd -b3 decompress: {z_decomp:.0f}",
                 f"{read_all / z_decomp:.2f}x", ">= 0.90x"))
    rows.append(("sha256sum (MB/s), for scale", f"{sha:.0f}", "", "", ""))
    headers = [bench_tool("dicom-headers", corpus, "3") for _ in range(reps)]
    rows.append(("DICOM header parse + index attributes, 1 core", f"{statistics.median(h['per_s'] for h in headers):.0f}/s",
                 f"p50 {statistics.median(h['p50_us'] for h in headers):.1f} us, "
                 f"p99 {statistics.median(h['p99_us'] for h in headers):.1f} us", "", ">= 20000/s, < 50 us"))
    ranges = {}
    for frame_size in (65536, 262144, 1048576):
        _, fsummary, fdata = ingest_runs(corpus, work, jobs, 1, frame_size)
        result = [bench_tool("ranges", fdata, "65536", str(range_seconds)) for _ in range(reps)]
        rate = statistics.median(r["reads_per_s"] for r in result)
        p50 = statistics.median(r["p50_us"] for r in result)
        p99 = statistics.median(r["p99_us"] for r in result)
        ranges[frame_size] = rate
        rows.append((f"random 64 KiB ranges/s, frame {frame_size // 1024} KiB", f"{rate:.0f}",
                     f"p50 {p50:.0f} us, p99 {p99:.0f} us; stored {fsummary['bytes_stored'] / z_size:.3f}x zstd -3",
                     "", ">= 5000/s"))
        aligned = [bench_tool("ranges", fdata, "65536", str(range_seconds), "aligned") for _ in range(reps)]
        rows.append((f"  same, 64 KiB-aligned", f"{statistics.median(r['reads_per_s'] for r in aligned):.0f}",
                     f"p50 {statistics.median(r['p50_us'] for r in aligned):.0f} us, "
                     f"p99 {statistics.median(r['p99_us'] for r in aligned):.0f} us", "", ""))
    for old in work.glob("store-*"):
        shutil.rmtree(old, ignore_errors=True)
    width = [max(len(r[i]) for r in rows + [("figure", "cairn", "anchor (same run)", "ratio", "target")]) for i in range(5)]
    lines = []
    for r in [("figure", "cairn", "anchor (same run)", "ratio", "target")] + rows:
        lines.append("| " + " | ".join(c.ljust(width[i]) for i, c in enumerate(r)) + " |")
        if len(lines) == 1:
            lines.append("|" + "|".join("-" * (w + 2) for w in width) + "|")
    table = "\n".join(lines)
    print(table, flush=True)
    return f"## {label}: {len(files)} files, {total / 1e6:.1f} MB\n\n{table}\n"


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--corpus", type=Path, required=True)
    parser.add_argument("--shared", type=Path, help="also run on this folder (../shared/dicom)")
    parser.add_argument("--work", type=Path, default=REPO / "Tools" / "bench" / "out")
    parser.add_argument("--reps", type=int, default=3)
    parser.add_argument("--jobs", type=int, default=os.cpu_count())
    parser.add_argument("--range-seconds", type=float, default=3.0)
    parser.add_argument("--index-scale", type=int, default=1_000_000,
                        help="instances for the index-scale run (0 skips it; 1M takes ~15 minutes)")
    args = parser.parse_args()
    args.work.mkdir(parents=True, exist_ok=True)
    for old in args.work.glob("store-*"):
        shutil.rmtree(old, ignore_errors=True)
    report = [f"# Cairn store benchmark, {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}, "
              f"{os.cpu_count()} cores\n"]
    report.append(run(args.corpus, args.work, args.reps, args.jobs, args.range_seconds, "generated corpus"))
    if args.shared and args.shared.exists():
        report.append(run(args.shared, args.work, args.reps, args.jobs, args.range_seconds, "shared/dicom"))
    if args.index_scale:
        print(f"\n## index scale: {args.index_scale} small instances, ingest rate per {args.index_scale // 10}\n", flush=True)
        out = subprocess.run([sys.executable, str(Path(__file__).parent / "index_scale.py"), "--count", str(args.index_scale),
                              "--step", str(args.index_scale // 10), "--work", str(args.work / "index-scale")],
                             capture_output=True, text=True, check=True).stdout
        print(out)
        report.append(f"## index scale\n\n```\n{out}```\n")
    (args.work / "latest.md").write_text("\n".join(report))
    print(f"\nwritten to {args.work / 'latest.md'}")


if __name__ == "__main__":
    main()
