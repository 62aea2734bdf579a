#!/usr/bin/env python3
"""Index scale: ingest rate of small DICOM instances from 0 to N instances in one store.

Writes N small, de-identified, explicit-VR instances (unique UIDs, 200 subjects) in batches of
--step files, ingests each batch with `cairn ingest --jobs 2`, and prints the rate of every batch,
so a slowdown as the index grows shows as a falling curve. Run by Tools/bench/run.sh --index-scale,
or directly:  python3 Tools/bench/index_scale.py --count 1000000 --step 100000
"""
import argparse
import json
import os
import shutil
import struct
import subprocess
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
CAIRN = REPO / ".build" / "release" / "cairn"


def element(group, elem, vr, value: bytes) -> bytes:
    if len(value) % 2:
        value += b"\0" if vr == b"UI" else b" "
    if vr in (b"OB", b"OW", b"SQ", b"UN", b"UT"):
        return struct.pack("<HH2sHI", group, elem, vr, 0, len(value)) + value
    return struct.pack("<HH2sH", group, elem, vr, len(value)) + value


def instance(n: int) -> bytes:
    subject = f"SCALE-{n % 200:04d}".encode()
    study = f"2.25.{1000 + n // 50}".encode()
    series = f"2.25.{9000000 + n // 10}".encode()
    sop = f"2.25.{100000000 + n}".encode()
    meta = element(2, 0x10, b"UI", b"1.2.840.10008.1.2.1")
    body = b"".join([
        element(0x0008, 0x0016, b"UI", b"1.2.840.10008.5.1.4.1.1.7"),
        element(0x0008, 0x0018, b"UI", sop),
        element(0x0008, 0x0060, b"CS", [b"CT", b"MR", b"OT"][n % 3]),
        element(0x0008, 0x0070, b"LO", [b"SIEMENS", b"GE MEDICAL SYSTEMS", b"Philips"][n % 3]),
        element(0x0010, 0x0010, b"PN", b"ANON"),
        element(0x0010, 0x0020, b"LO", subject),
        element(0x0010, 0x0040, b"CS", b"F" if n % 2 else b"M"),
        element(0x0012, 0x0062, b"CS", b"YES"),
        element(0x0018, 0x0015, b"CS", b"CHEST"),
        element(0x0020, 0x000D, b"UI", study),
        element(0x0020, 0x000E, b"UI", series),
        element(0x0028, 0x0010, b"US", struct.pack("<H", 16)),
        element(0x0028, 0x0011, b"US", struct.pack("<H", 16)),
        element(0x0028, 0x0100, b"US", struct.pack("<H", 16)),
        element(0x7FE0, 0x0010, b"OW", struct.pack("<Q", n) * 64),
    ])
    return b"\0" * 128 + b"DICM" + meta + body


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--count", type=int, default=1_000_000)
    parser.add_argument("--step", type=int, default=100_000)
    parser.add_argument("--work", type=Path, default=REPO / "Tools" / "bench" / "out" / "index-scale")
    args = parser.parse_args()
    shutil.rmtree(args.work, ignore_errors=True)
    data = args.work / "data"
    args.work.mkdir(parents=True)
    subprocess.run([CAIRN, "init", "--data", data], check=True, capture_output=True)
    rates = []
    print(f"{'instances':>12} {'files/s':>9} {'MB/s':>7}")
    for start in range(0, args.count, args.step):
        # Batches stay until the end: freeing inodes just before the next batch allocates its own
        # makes ext4 skip recently freed ones, a cost no real ingest pays.
        batch = args.work / f"batch-{start // args.step:03d}"
        for sub in range(0, args.step, 1000):
            folder = batch / f"{sub // 1000:04d}"
            folder.mkdir(parents=True)
            for n in range(start + sub, min(start + sub + 1000, start + args.step)):
                (folder / f"{n}.dcm").write_bytes(instance(n))
        subprocess.run(["sync"], check=True)
        began = time.monotonic()
        out = subprocess.run([CAIRN, "ingest", "--json", "--jobs", "2", "--data", data, batch],
                             check=True, capture_output=True)
        wall = time.monotonic() - began
        summary = json.loads(out.stdout)
        assert summary["instances"] == args.step and summary["failed"] == 0, summary
        rate = args.step / wall
        rates.append(rate)
        print(f"{start + args.step:>12} {rate:>9.0f} {summary['bytes_in'] / wall / 1e6:>7.1f}", flush=True)
    index_size = sum(f.stat().st_size for f in data.glob("index.sqlite*"))
    print(f"last batch / first batch: {rates[-1] / rates[0]:.2f}; slowest / fastest: {min(rates) / max(rates):.2f}; "
          f"index {index_size / 1e6:.0f} MB for {args.count} instances")
    shutil.rmtree(args.work, ignore_errors=True)


if __name__ == "__main__":
    main()
