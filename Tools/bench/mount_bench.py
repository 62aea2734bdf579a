#!/usr/bin/env python3
"""`cairn mount` against its anchors, same corpus, same run (issue 11's targets). Needs root
(/dev/fuse; readahead is widened only for root) and a release build. Page caches are not dropped:
"cold" means a fresh mount (the kernel holds none of its pages) over blob files in the page cache,
so both sides are bound by decoding, not by the disk.

- cold sequential read of every corpus file through a fresh mount, one reader (`cat`), against
  `zstd -d` of the same blob files (and `cat` of the few stored raw); then two readers against two
  such, and against one. The daemon's CPU seconds are printed beside: it decodes a large read's
  two halves on two cores, where `zstd -d` uses one.
- warm re-read (the second epoch of a training job): served from the page cache; anchor `cat`
  of the original files, also in the page cache (ext4 or whatever holds the corpus).
- random 64 KiB preads on mounted files, 16 threads, each read made cold with
  POSIX_FADV_DONTNEED first (files kept open: one audit record per open, not per read), against
  random 64 KiB `Range:` GETs from `cairn node serve` (wrk, 16 connections, every request
  audited) on the same blobs (those over 64 KiB on both sides).
- `find MOUNT -type f | wc -l` over --instances instance rows (written straight into the index
  with sqlite3: the listing is what is measured), the daemon's memory for them, and how long an
  erased subject stays visible after `dataset erase-subject` returns.
- daemon peak RSS while 16 readers stream a 2 GiB instance.

Medians of --reps. Prints a table and writes Tools/bench/out/mount-latest.md.

    .venv/bin/python Tools/bench/mount_bench.py --corpus Tools/bench/out/corpus [--reps 3]
"""
import argparse
import json
import os
import random
import shutil
import signal
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from serve_bench import free_port, lua_script, wait_http, wrk  # noqa: E402

REPO = Path(__file__).resolve().parents[2]
CAIRN = str(REPO / ".build" / "release" / "cairn")
OUT = REPO / "Tools" / "bench" / "out"
RANGE = 64 * 1024


def run(data, *args):
    return subprocess.run([CAIRN, *args, "--data", str(data)], capture_output=True, text=True, check=True)


def cpu_seconds(pid):
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def status_kb(pid, field):
    with open(f"/proc/{pid}/status") as f:
        return next(int(line.split()[1]) for line in f if line.startswith(field + ":"))


class Mounted:
    def __init__(self, data, point: Path, dataset: str):
        point.mkdir(exist_ok=True)
        self.point = point
        self.proc = subprocess.Popen([CAIRN, "mount", str(point), "--datasets", dataset, "--subject", "bench", "--foreground",
                                      "--data", str(data)], stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        deadline = time.monotonic() + 600
        while not os.path.ismount(point):
            if self.proc.poll() is not None or time.monotonic() > deadline:
                sys.exit(f"mount failed: {self.proc.stderr.read().decode()}")
            time.sleep(0.05)

    def stop(self):
        self.proc.send_signal(signal.SIGTERM)
        self.proc.wait(timeout=120)


def sequence(commands):
    """Commands run one after the other, as one reader."""
    for command in commands:
        if len(command) == 1 or command[0] == "zstd" and len(command) == 4:
            continue  # no files for this tool: it would read stdin
        if subprocess.run(command, stdout=subprocess.DEVNULL).returncode != 0:
            sys.exit(f"{command[0]} failed")


def timed(commands):
    started = time.perf_counter()
    sequence(commands)
    return time.perf_counter() - started


def parallel(readers):
    """Each reader (a list of commands) in its own thread; seconds until all are done."""
    started = time.perf_counter()
    threads = [threading.Thread(target=sequence, args=(commands,)) for commands in readers]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return time.perf_counter() - started


def decode(blobs):
    """The anchor reader: `zstd -d` of the zstd blobs, `cat` of those stored raw (JPEG pixel data)."""
    return [["zstd", "-d", "-q", "-c", *[b for b, codec in blobs if codec == "zstd"]],
            ["cat", *[b for b, codec in blobs if codec != "zstd"]]]


def halves(items):
    return [items[0::2], items[1::2]]


def random_preads(files, seconds, threads, seed):
    """Random 64 KiB preads, each made cold first; returns reads per second."""
    sizes = [(f, os.path.getsize(f)) for f in files if os.path.getsize(f) > RANGE]
    count = [0] * threads
    stop = time.monotonic() + seconds

    def worker(n):
        rng = random.Random(seed * 100 + n)
        fds = {}
        while time.monotonic() < stop:
            path, size = rng.choice(sizes)
            fd = fds.get(path)
            if fd is None:
                fd = fds[path] = os.open(path, os.O_RDONLY)
                os.posix_fadvise(fd, 0, 0, os.POSIX_FADV_RANDOM)
            start = rng.randrange(0, size - RANGE)
            os.posix_fadvise(fd, 0, 0, os.POSIX_FADV_DONTNEED)
            if len(os.pread(fd, RANGE, start)) != RANGE:
                raise RuntimeError("short read")
            count[n] += 1
        for fd in fds.values():
            os.close(fd)

    workers = [threading.Thread(target=worker, args=(n,)) for n in range(threads)]
    started = time.perf_counter()
    for w in workers:
        w.start()
    for w in workers:
        w.join()
    return sum(count) / (time.perf_counter() - started)


def fill_instances(index_path, instances):
    """Instance rows of a provider-shaped dataset: ~60 slices a series, 3 series a study."""
    db = sqlite3.connect(index_path)
    now = time.time()
    blobs, members, rows = [], [], []
    for n in range(instances):
        digest = f"{n:064x}"
        subject, study, series = n // 900, n // 180, n // 60
        blobs.append((digest, 500_000, 250_000, "zstd", 8, now))
        members.append(("big", digest, f"i{n}.dcm", now))
        rows.append(("big", digest, f"S{subject:06d}", f"1.2.826.0.1.{study}", f"1.2.826.0.1.{study}.{series}",
                     f"1.2.826.0.1.{study}.{series}.{n}", "CT", "CHEST"))
    db.executemany("INSERT INTO blobs (digest, size, stored_size, codec, frames, created_at) VALUES (?, ?, ?, ?, ?, ?)", blobs)
    db.executemany("INSERT INTO dataset_blobs (dataset_id, digest, name, added_at) VALUES (?, ?, ?, ?)", members)
    db.executemany("INSERT INTO instances (dataset_id, digest, subject, study_uid, series_uid, sop_uid, modality, body_part) "
                   "VALUES (?, ?, ?, ?, ?, ?, ?, ?)", rows)
    db.commit()
    db.close()


def big_instance(path: Path, size: int):
    """A 2 GiB file with CT-like compressibility, written in 64 MiB pieces."""
    import numpy as np
    rng = np.random.default_rng(5)
    piece = 64 << 20
    with open(path, "wb") as f:
        for _ in range(size // piece):
            f.write((rng.normal(1000, 30, piece // 2)).astype(np.int16).tobytes())


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--corpus", required=True)
    parser.add_argument("--reps", type=int, default=3)
    parser.add_argument("--seconds", type=int, default=8, help="length of each random-read run")
    parser.add_argument("--instances", type=int, default=100_000)
    parser.add_argument("--big-gib", type=int, default=2)
    parser.add_argument("--seed", type=int, default=1)
    args = parser.parse_args()
    if os.geteuid() != 0:
        sys.exit("run as root: it mounts FUSE and drops caches")
    files = sorted(p for p in Path(args.corpus).rglob("*") if p.is_file())
    work = Path(tempfile.mkdtemp(prefix="cairn-mount-bench-"))
    rows = []

    def row(name, cairn, anchor, unit, target, ratio=None):
        ratio = ratio if ratio is not None else (cairn / anchor if anchor else None)
        rows.append((name, cairn, anchor, unit, ratio, target))
        shown = f"{ratio:.2f}x" if ratio is not None else "-"
        print(f"{name:<52} {cairn:>10.1f} {'' if anchor is None else f'{anchor:10.1f}':>10} {unit:<8} {shown:>7}  {target}", flush=True)

    try:
        data = work / "data"
        run(data, "init")
        run(data, "dataset", "create", "bench", "--deid-policy", "accept")
        run(data, "ingest", "--dataset", "bench", *map(str, files))
        entries = [json.loads(line) for line in run(data, "ls", "--dataset", "bench", "--json").stdout.splitlines() if line.strip()]
        blob_files = [(run(data, "path", e["digest"]).stdout.strip(), e["codec"]) for e in entries]
        original_bytes = sum(e["size"] for e in entries)
        print(f"corpus: {len(entries)} instances, {original_bytes / 1e6:.0f} MB; seed {args.seed}; reps {args.reps}")
        sequence([["cat", *[b for b, _ in blob_files]]])  # blob files in the page cache
        point = work / "mnt"

        def mounted_files(mount):
            return sorted(str(p) for p in (mount.point / "bench").rglob("*.dcm"))

        one, two, zstd_one, zstd_two, warm, local, cpu_one = [], [], [], [], [], [], []
        originals = [str(f) for f in files]
        sequence([["cat", *originals]])
        for _ in range(args.reps):
            local.append(timed([["cat", *originals]]))
            zstd_one.append(timed(decode(blob_files)))
            zstd_two.append(parallel([decode(half) for half in halves(blob_files)]))
            mount = Mounted(data, point, "bench")
            mine = mounted_files(mount)
            before = cpu_seconds(mount.proc.pid)
            one.append(timed([["cat", *mine]]))
            cpu_one.append(cpu_seconds(mount.proc.pid) - before)
            warm.append(timed([["cat", *mine]]))
            mount.stop()
            mount = Mounted(data, point, "bench")
            two.append(parallel([[["cat", *half]] for half in halves(mounted_files(mount))]))
            mount.stop()
        mb = original_bytes / 1e6
        med = statistics.median
        print(f"{'':<52} {'cairn':>10} {'anchor':>10}")
        row("cold read, 1 reader vs zstd -d (MB/s)", mb / med(one), mb / med(zstd_one), "MB/s", ">= 0.8x")
        row("  ... daemon CPU seconds for it (wall seconds)", med(cpu_one), med(one), "s", "")
        row("cold read, 2 readers vs 2 zstd -d (MB/s)", mb / med(two), mb / med(zstd_two), "MB/s", "")
        row("cold read, 2 readers vs 1 zstd -d (MB/s)", mb / med(two), mb / med(zstd_one), "MB/s", ">= 1.6x")
        row("warm re-read, 1 reader vs cat of the originals (MB/s)", mb / med(warm), mb / med(local), "MB/s", ">= 2000 MB/s")

        # Random 64 KiB reads: the mount (cold each read) against the node's HTTP ranges.
        port = free_port()
        node = subprocess.Popen([CAIRN, "node", "serve", "--data", str(data), "--listen", f"127.0.0.1:{port}"],
                                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        try:
            url = f"http://127.0.0.1:{port}"
            wait_http(url + "/healthz")
            token = run(data, "token", "issue", "--subject", "bench", "--datasets", "bench", "--ttl", "1d").stdout.strip()
            script = work / "range.lua"
            lua_script(script, [(f"/v1/blobs/{e['digest']}", e["size"]) for e in entries if e["size"] > RANGE], "range", token)
            http = [wrk(url, script, args.seconds, 16)["rps"] for _ in range(args.reps)]
        finally:
            node.send_signal(signal.SIGTERM)
            node.wait(timeout=60)
        mount = Mounted(data, point, "bench")
        fuse = [random_preads(mounted_files(mount), args.seconds, 16, args.seed + rep) for rep in range(args.reps)]
        mount.stop()
        row("random 64 KiB reads, 16 threads vs node HTTP ranges", med(fuse), med(http), "reads/s", ">= 1.0x")

        # find over many instances, and the daemon's memory for them.
        big = work / "big"
        run(big, "init")
        run(big, "dataset", "create", "big", "--deid-policy", "accept")
        fill_instances(big / "index.sqlite", args.instances)
        finds, mount_times, rss, erasures = [], [], [], []
        for rep in range(args.reps):
            started = time.perf_counter()
            mount = Mounted(big, point, "big")
            mount_times.append(time.perf_counter() - started)
            started = time.perf_counter()
            listed = subprocess.run(f"find {point} -type f | wc -l", shell=True, capture_output=True, text=True, check=True)
            finds.append(time.perf_counter() - started)
            assert int(listed.stdout) == args.instances + 1 - 900 * rep, listed.stdout
            rss.append(status_kb(mount.proc.pid, "VmRSS") / 1024)
            # Consent withdrawn while mounted: one subject (900 instances) erased; how long until it is gone.
            subject = point / "big" / f"S{rep:06d}"
            assert subject.is_dir()
            run(big, "dataset", "erase-subject", "big", f"S{rep:06d}")
            started = time.perf_counter()
            while subject.exists():
                time.sleep(0.01)
            erasures.append(time.perf_counter() - started)
            mount.stop()
        row(f"find -type f over {args.instances:,} instances (s)", med(finds), None, "s", "< 3 s")
        row(f"mount start with {args.instances:,} instances (s)", med(mount_times), None, "s", "")
        row(f"erased subject gone, {args.instances:,} instances mounted (s)", med(erasures), None, "s", "< 1 s")
        row(f"daemon RSS after listing {args.instances:,} (MB)", med(rss), None, "MB", "")

        # 16 readers of one 2 GiB instance.
        size = args.big_gib << 30
        source = work / "big.bin"
        big_instance(source, size)
        run(data, "dataset", "create", "one", "--allow-non-dicom")
        run(data, "ingest", "--dataset", "one", str(source))
        source.unlink()
        mount = Mounted(data, point, "one")
        (target,) = list((point / "one" / "files").iterdir())
        errors = []

        def stream(n):
            try:
                with open(target, "rb", buffering=0) as f:
                    f.seek(n * size // 16)
                    for _ in range(size // 16 // (1 << 20)):
                        if not f.read(1 << 20):
                            break
            except OSError as error:
                errors.append(error)

        readers = [threading.Thread(target=stream, args=(n,)) for n in range(16)]
        started = time.perf_counter()
        for r in readers:
            r.start()
        for r in readers:
            r.join()
        elapsed = time.perf_counter() - started
        peak = status_kb(mount.proc.pid, "VmHWM") / 1024
        rereads = [timed([["cat", str(target)]]) for _ in range(args.reps)]
        mount.stop()
        if errors:
            sys.exit(f"readers failed: {errors[:3]}")
        row(f"daemon peak RSS, 16 readers of {args.big_gib} GiB (MB)", peak, None, "MB", "< 200 MB")
        row("  ... their throughput (MB/s)", size / 1e6 / elapsed, None, "MB/s", "")
        row(f"warm re-read of the {args.big_gib} GiB instance, 1 reader (MB/s)", size / 1e6 / med(rereads), None, "MB/s", ">= 2000 MB/s")
    finally:
        if os.path.ismount(work / "mnt"):
            subprocess.run(["fusermount3", "-u", "-z", str(work / "mnt")], check=False)
        shutil.rmtree(work, ignore_errors=True)

    OUT.mkdir(parents=True, exist_ok=True)
    lines = ["| measure | cairn | anchor | unit | ratio | target |", "|---|---|---|---|---|---|"]
    for name, cairn, anchor, unit, ratio, target in rows:
        lines.append(f"| {name} | {cairn:.1f} | {'' if anchor is None else f'{anchor:.1f}'} | {unit} | "
                     f"{'' if ratio is None else f'{ratio:.2f}x'} | {target} |")
    (OUT / "mount-latest.md").write_text("\n".join(lines) + "\n")
    print(f"written to {OUT / 'mount-latest.md'}")


if __name__ == "__main__":
    main()
