#!/usr/bin/env python3
"""Storage profiles against plain zstd frames and the image codecs, on real vendor images.

Corpus: the five full-size vendor images of ../shared/dicom-real (CT 512x512 signed, MR
1024x1024, two radiographs ~1900x1900, ultrasound RGB), copied with fresh SOP Instance UIDs and
weighted as a provider's archive of mostly CT (--weights, copies per image). Per store (plain
`--codec zstd`, the frames Cairn wrote before profiles, then each profile): stored ratio (original
bytes / stored bytes), whole-blob decode on one core (cairn-bench read-all from the page cache,
every frame checksummed) and `cairn ingest --jobs N` MB/s.
Anchors in the same run: `zstd -b3` over the same files, and JPEG-LS (CharLS) and HTJ2K (OpenJPH)
lossless through imagecodecs on each image's pixels (stored as the DICOM header + the codestream,
which is what a JPEG-LS or HTJ2K transfer syntax stores; decode on one core), weighted the same.
Each figure is the median of --reps runs.
"""
import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
RELEASE = REPO / ".build" / "release"
sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench import zstd_bench  # noqa: E402

DEFAULT_WEIGHTS = "693_UNCI.dcm=40,MR2_UNCI.dcm=10,RG1_UNCI.dcm=2,RG3_UNCI.dcm=2,US1_UNCI.dcm=4"


def sh(*args):
    return subprocess.run([str(a) for a in args], capture_output=True, text=True, check=True)


def make_corpus(real: Path, out: Path, weights: dict):
    import pydicom
    from pydicom.uid import generate_uid
    marker = out / ".complete"
    if marker.exists() and marker.read_text() == json.dumps(weights, sort_keys=True):
        return
    shutil.rmtree(out, ignore_errors=True)
    out.mkdir(parents=True)
    for name, copies in weights.items():
        ds = pydicom.dcmread(real / name)
        for i in range(copies):
            ds.SOPInstanceUID = generate_uid()
            if "MediaStorageSOPInstanceUID" in ds.file_meta:
                ds.file_meta.MediaStorageSOPInstanceUID = ds.SOPInstanceUID
            ds.save_as(out / f"{Path(name).stem}-{i:03d}.dcm", enforce_file_format=False)
    marker.write_text(json.dumps(weights, sort_keys=True))


def store_figures(corpus: Path, work: Path, args: list, jobs: int, reps: int):
    speeds, reads, stored, total = [], [], None, None
    for rep in range(reps):
        data = work / f"pixel-store-{rep}-{time.monotonic_ns()}"
        sh(RELEASE / "cairn", "init", "--data", data)
        sh(RELEASE / "cairn", "dataset", "create", "bench", "--deid-policy", "accept", "--data", data)
        sh("sync")
        summary = json.loads(sh(RELEASE / "cairn", "ingest", "--json", "--jobs", jobs, "--dataset", "bench",
                                "--data", data, *args, corpus).stdout)
        assert summary["failed"] == 0, summary
        speeds.append(summary["bytes_in"] / summary["seconds"] / 1e6)
        stored, total = summary["bytes_stored"], summary["bytes_in"]
        # Blobs over 1 MiB were written with O_DIRECT: the first pass reads them from disk, the
        # second from the page cache, as `zstd -b3` and the image codecs decode from memory.
        sh(RELEASE / "cairn-bench", "read-all", data)
        reads.append(json.loads(sh(RELEASE / "cairn-bench", "read-all", data).stdout)["mb_per_s"])
        shutil.rmtree(data, ignore_errors=True)
    return {"ratio": total / stored, "decode": statistics.median(reads), "ingest": statistics.median(speeds),
            "stored": stored}


def codec_anchors(real: Path, weights: dict, reps: int):
    """Weighted stored ratio and one-core decode MB/s of JPEG-LS and HTJ2K lossless."""
    import imagecodecs
    import numpy as np
    import pydicom
    out = {}
    for codec in ("jpegls", "htj2k"):
        original = stored = pixel_bytes = seconds = 0
        for name, copies in weights.items():
            path = real / name
            ds = pydicom.dcmread(path)
            pixels = ds.pixel_array
            if ds.PixelRepresentation == 1:  # these codecs take unsigned samples: their best case
                pixels = (pixels.astype(np.int32) - int(pixels.min())).astype(np.uint16)
            if codec == "jpegls":
                encoded = imagecodecs.jpegls_encode(pixels)
                decode = imagecodecs.jpegls_decode
            else:
                encoded = imagecodecs.htj2k_encode(pixels, reversible=True)
                decode = imagecodecs.htj2k_decode
            restored = decode(encoded)
            assert np.array_equal(restored.reshape(pixels.shape), pixels), f"{codec} is not lossless on {name}"
            times = []
            for _ in range(reps):
                start = time.perf_counter()
                decode(encoded)
                times.append(time.perf_counter() - start)
            size = path.stat().st_size
            header = size - len(ds.PixelData)
            original += copies * size
            stored += copies * (header + len(encoded))
            pixel_bytes += copies * len(ds.PixelData)
            seconds += copies * statistics.median(times)
        out[codec] = {"ratio": original / stored, "decode": pixel_bytes / seconds / 1e6}
    return out


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--real", type=Path, default=REPO.parent / "shared" / "dicom-real")
    parser.add_argument("--work", type=Path, default=REPO / "Tools" / "bench" / "out")
    parser.add_argument("--weights", default=DEFAULT_WEIGHTS, help="copies per image: NAME=N,...")
    parser.add_argument("--reps", type=int, default=3)
    parser.add_argument("--jobs", type=int, default=2)
    args = parser.parse_args()
    if not args.real.is_dir():
        sys.exit(f"{args.real} is missing: the five vendor images (pydicom-data's WG04 set) are needed")
    weights = {k: int(v) for k, v in (item.split("=") for item in args.weights.split(","))}
    corpus = args.work / "pixel-corpus"
    make_corpus(args.real, corpus, weights)
    files = sorted(p for p in corpus.glob("*.dcm"))
    total = sum(p.stat().st_size for p in files)
    for p in files:
        p.read_bytes()
    print(f"## Pixel profiles: {len(files)} files, {total / 1e6:.1f} MB ({args.weights}), {args.reps} reps, medians\n",
          flush=True)
    z_comp, z_decomp, z_size = zstd_bench(files, args.reps)
    anchors = codec_anchors(args.real, weights, args.reps)
    runs = {"zstd-3 frames (--codec zstd)": ["--codec", "zstd"]}
    runs.update({p: ["--profile", p] for p in ("archive", "balanced", "fast")})
    figures = {label: store_figures(corpus, args.work, extra, args.jobs, args.reps) for label, extra in runs.items()}
    today = figures["zstd-3 frames (--codec zstd)"]
    rows = [("zstd -b3 (anchor)", f"{total / z_size:.2f}", f"{z_decomp:.0f}", f"{z_comp:.0f} x1 core", "")]
    rows += [(f"{name} (anchor)", f"{a['ratio']:.2f}", f"{a['decode']:.0f}", "", "") for name, a in
             (("JPEG-LS / CharLS", anchors["jpegls"]), ("HTJ2K / OpenJPH", anchors["htj2k"]))]
    for label, f in figures.items():
        rows.append((label, f"{f['ratio']:.2f}", f"{f['decode']:.0f}", f"{f['ingest']:.0f}",
                     f"ratio {f['ratio'] / today['ratio']:.2f}x, decode {f['decode'] / today['decode']:.2f}x, "
                     f"ingest {f['ingest'] / today['ingest']:.2f}x"))
    a, b, fa = figures["archive"], figures["balanced"], figures["fast"]
    checks = [
        ("archive ratio >= JPEG-LS", a["ratio"] / anchors["jpegls"]["ratio"]),
        ("archive decode >= JPEG-LS", a["decode"] / anchors["jpegls"]["decode"]),
        ("balanced ratio >= 1.4x zstd-3 frames", b["ratio"] / today["ratio"] / 1.4),
        ("balanced decode >= zstd-3 frames", b["decode"] / today["decode"]),
        (f"balanced ingest --jobs {args.jobs} >= zstd-3 frames", b["ingest"] / today["ingest"]),
        ("fast decode >= 3x zstd-3 frames", fa["decode"] / today["decode"] / 3),
        ("fast ratio >= zstd-3 frames", fa["ratio"] / today["ratio"]),
    ]
    header = ("store", "stored ratio", "decode MB/s (1 core)", f"ingest MB/s (--jobs {args.jobs})", "against zstd-3 frames")
    width = [max(len(r[i]) for r in rows + [header]) for i in range(5)]
    lines = ["| " + " | ".join(c.ljust(width[i]) for i, c in enumerate(header)) + " |",
             "|" + "|".join("-" * (w + 2) for w in width) + "|"]
    lines += ["| " + " | ".join(c.ljust(width[i]) for i, c in enumerate(r)) + " |" for r in rows]
    lines += ["", "| target | measured / target |", "|---|---|"]
    lines += [f"| {name} | {value:.2f} {'met' if value >= 1 else 'NOT met'} |" for name, value in checks]
    table = "\n".join(lines)
    print(table, flush=True)
    (args.work / "pixel-latest.md").write_text(
        f"## Pixel profiles: {len(files)} files, {total / 1e6:.1f} MB ({args.weights})\n\n{table}\n")


if __name__ == "__main__":
    main()
