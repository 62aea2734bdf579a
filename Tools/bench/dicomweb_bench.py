#!/usr/bin/env python3
"""DICOMweb benchmarks: Cairn's node against Orthanc 1.10 with its DICOMweb plugin (Debian's
`orthanc` + `orthanc-dicomweb`, default settings, storage uncompressed), same corpus, same run.

- series metadata (WADO-RS) of one 1,000-instance CT series (512x512, 16-bit): wall time of the
  whole response, one client, median of --reps after a warm-up request;
- frames (WADO-RS), one frame per request, random instances of that series, 16 connections (wrk);
- QIDO-RS instance search over 1,000,000 indexed instances, Modality + StudyDate range filter,
  limit 100, sequential requests: p50/p95 latency. The index rows are written straight into a
  fresh store's SQLite index (as ingest would write them, without the blobs, which a search never
  opens) because ingesting a million files would take the run an hour.

Run by `Tools/bench/run.sh --dicomweb-only` (and by the full run); writes out/dicomweb-latest.md.
"""
import argparse
import json
import random
import sqlite3
import statistics
import subprocess
import sys
import time
from pathlib import Path

import requests

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))
from dicom_gen import write_ct_study  # noqa: E402
from serve_bench import LUA_COMMON, Orthanc, rss, wrk  # noqa: E402

REPO = Path(__file__).resolve().parents[2]
CAIRN = REPO / ".build" / "release" / "cairn"
OUT = REPO / "Tools" / "bench" / "out"
PLUGIN = "/usr/share/orthanc/plugins/libOrthancDicomWeb.so"
FRAME_ACCEPT = 'multipart/related; type="application/octet-stream"'


def cairn(data: Path, *args):
    return subprocess.run([str(CAIRN), *args, "--data", str(data)], check=True, capture_output=True, text=True).stdout


class CairnNode:
    def __init__(self, data: Path, dataset: str):
        self.log = open(data.parent / f"{data.name}-node.log", "w")
        self.proc = subprocess.Popen([str(CAIRN), "node", "serve", "--data", str(data), "--listen", "127.0.0.1:0",
                                      "--node-id", "bench"], stdout=subprocess.PIPE, stderr=self.log, text=True)
        line = self.proc.stdout.readline()
        self.url = line.split("listening on ")[1].split()[0]
        self.token = json.loads(cairn(data, "token", "issue", "--subject", "bench", "--datasets", dataset,
                                      "--ttl", "2h", "--json"))["token"]
        self.headers = {"Authorization": f"Bearer {self.token}"}

    def stop(self):
        self.proc.terminate()
        self.proc.wait(timeout=60)


def orthanc_dicomweb(work: Path, files):
    """Orthanc as serve_bench runs it, with the DICOMweb plugin loaded."""
    return Orthanc(files, work, extra={"Plugins": [PLUGIN], "DicomWeb": {"Enable": True, "Root": "/dicom-web/"}})


def timed_get(url, headers, reps):
    session = requests.Session()
    first = session.get(url, headers=headers, timeout=600)
    first.raise_for_status()
    times = []
    for _ in range(reps):
        start = time.perf_counter()
        response = session.get(url, headers=headers, timeout=600)
        response.raise_for_status()
        times.append(time.perf_counter() - start)
    return statistics.median(times), first


def frames_script(path: Path, targets, headers):
    lines = ["local targets = {"] + [f'  "{t}",' for t in targets] + ["}", LUA_COMMON]
    fields = ", ".join(f'["{k}"] = "{v}"' for k, v in headers.items()).replace('"application/octet-stream"', '\\"application/octet-stream\\"')
    lines.append(f"""
request = function()
  local headers = {{{fields}}}
  return wrk.format("GET", targets[math.random(#targets)], headers)
end
""")
    path.write_text("\n".join(lines))


def frames_rate(name, url, targets, headers, seconds, reps):
    script = OUT / f"wrk-dicomweb-frames-{name}.lua"
    frames_script(script, targets, {**headers, "Accept": FRAME_ACCEPT})
    runs = [wrk(url, script, seconds, 16) for _ in range(reps)]
    for r in runs:
        if r["errors"] or r["non2xx"]:
            sys.exit(f"{name} frames: {r['errors']} socket errors, {r['non2xx']} non-2xx responses")
    return {k: statistics.median(r[k] for r in runs) for k in ("rps", "p50_us", "p99_us")}


def build_million(data: Path, count: int, seed: int):
    """A store whose index holds `count` instances of dataset `big` (5 modalities, 2015-2024)."""
    cairn(data, "init")
    cairn(data, "dataset", "create", "big")
    rng = random.Random(seed)
    db = sqlite3.connect(data / "index.sqlite")
    now = time.time()
    modalities = ["CT"] * 5 + ["MR"] * 3 + ["PT", "CR", "US"]
    per_series, per_study = 100, 4
    blobs, members, instances = [], [], []
    for n in range(count):
        series = n // per_series
        study = series // per_study
        study_rng = random.Random(seed * 1_000_003 + study)
        date = f"{2015 + study_rng.randrange(10)}{1 + study_rng.randrange(12):02d}{1 + study_rng.randrange(28):02d}"
        modality = random.Random(seed * 7_000_003 + series).choice(modalities)
        digest = f"{rng.getrandbits(256):064x}"
        study_uid, series_uid, sop_uid = f"1.2.826.0.1.{seed}.{study}", f"1.2.826.0.1.{seed}.{study}.{series}", f"1.2.826.0.1.{seed}.{study}.{series}.{n}"
        study_attrs = (f'"00080020":{{"vr":"DA","Value":["{date}"]}},"00100020":{{"vr":"LO","Value":["SUBJ-{study // 3}"]}},'
                       f'"0020000D":{{"vr":"UI","Value":["{study_uid}"]}},"00080050":{{"vr":"SH","Value":["A{study}"]}}')
        series_attrs = (f'"00080060":{{"vr":"CS","Value":["{modality}"]}},"0020000E":{{"vr":"UI","Value":["{series_uid}"]}},'
                        f'"00200011":{{"vr":"IS","Value":[{series % per_study + 1}]}}')
        instance_attrs = (f'"00080016":{{"vr":"UI","Value":["1.2.840.10008.5.1.4.1.1.2"]}},"00080018":{{"vr":"UI","Value":["{sop_uid}"]}},'
                          f'"00200013":{{"vr":"IS","Value":[{n % per_series + 1}]}},"00280010":{{"vr":"US","Value":[512]}},'
                          f'"00280011":{{"vr":"US","Value":[512]}}')
        blobs.append((digest, 526_000, 300_000, "zstd", 2, now))
        members.append(("big", digest, now))
        instances.append(("big", digest, f"SUBJ-{study // 3}", study_uid, series_uid, sop_uid, "1.2.840.10008.5.1.4.1.1.2",
                          modality, date, f"A{study}", series % per_study + 1, n % per_series + 1, 512, 512, 1,
                          "1.2.840.10008.1.2.1", study_attrs, series_attrs, instance_attrs))
        if len(instances) == 50_000 or n == count - 1:
            with db:
                db.executemany("INSERT INTO blobs (digest, size, stored_size, codec, frames, state, created_at) "
                               "VALUES (?, ?, ?, ?, ?, 'ok', ?)", blobs)
                db.executemany("INSERT INTO dataset_blobs (dataset_id, digest, added_at) VALUES (?, ?, ?)", members)
                db.executemany("INSERT INTO instances (dataset_id, digest, subject, study_uid, series_uid, sop_uid, sop_class, "
                               "modality, study_date, accession_number, series_number, instance_number, rows, columns, frames, "
                               "transfer_syntax, study_attributes, series_attributes, instance_attributes) "
                               "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)", instances)
            blobs, members, instances = [], [], []
    db.execute("ANALYZE")
    db.close()


def qido_latencies(node, queries):
    session = requests.Session()
    times, counts = [], []
    for query in queries:
        start = time.perf_counter()
        response = session.get(node.url + "/dicomweb/big/instances", params=query, headers=node.headers, timeout=60)
        response.raise_for_status()
        times.append(time.perf_counter() - start)
        counts.append(len(response.json()))
    times.sort()
    return times[len(times) // 2], times[int(len(times) * 0.95) - 1], statistics.mean(counts)


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--reps", type=int, default=3)
    parser.add_argument("--seconds", type=int, default=10)
    parser.add_argument("--instances", type=int, default=1000, help="instances in the benchmark series")
    parser.add_argument("--qido-instances", type=int, default=1_000_000)
    parser.add_argument("--seed", type=int, default=17)
    args = parser.parse_args()
    work = OUT / "dicomweb"
    work.mkdir(parents=True, exist_ok=True)
    print(f"seed {args.seed}")

    series_folder = work / f"series-{args.instances}"
    series_marker = work / f"series-{args.instances}.complete"
    if not series_marker.exists():
        subprocess.run(["rm", "-rf", str(series_folder)], check=True)
        series_folder.mkdir(parents=True)
        write_ct_study(series_folder, "SUBJ-BENCH", series_count=1, slices=args.instances, size=512, seed=args.seed)
        series_marker.touch()
    files = sorted(series_folder.glob("*.dcm"))
    import pydicom
    first = pydicom.dcmread(files[0], stop_before_pixels=True)
    study, series = first.StudyInstanceUID, first.SeriesInstanceUID
    sops = [pydicom.dcmread(f, stop_before_pixels=True).SOPInstanceUID for f in files]

    data = work / "cairn-data"
    subprocess.run(["rm", "-rf", str(data)], check=True)
    cairn(data, "init")
    # The generated study declares the Basic Profile options it uses (dicom_gen.py).
    cairn(data, "dataset", "create", "ct", "--deid-options", "retain-longitudinal-modified-dates,retain-patient-characteristics")
    cairn(data, "gate", "review", "--dataset", "ct", "--accept-all", str(series_folder))
    cairn(data, "ingest", str(series_folder), "--dataset", "ct", "--jobs", "2")
    node = CairnNode(data, "ct")
    print("loading Orthanc ...")
    orthanc = orthanc_dicomweb(work, files)
    results = {}
    try:
        metadata_path = f"/studies/{study}/series/{series}/metadata"
        results["cairn_metadata"], body = timed_get(node.url + "/dicomweb/ct" + metadata_path, node.headers, args.reps * 3)
        assert len(body.json()) == args.instances
        results["orthanc_metadata"], body = timed_get(orthanc.url + "/dicom-web" + metadata_path, {}, args.reps * 3)
        assert len(body.json()) == args.instances
        print(f"series metadata: cairn {results['cairn_metadata'] * 1000:.0f} ms, orthanc {results['orthanc_metadata'] * 1000:.0f} ms")
        targets = [f"/studies/{study}/series/{series}/instances/{sop}/frames/1" for sop in sops]
        results["cairn_frames"] = frames_rate("cairn", node.url, ["/dicomweb/ct" + t for t in targets], node.headers,
                                              args.seconds, args.reps)
        results["orthanc_frames"] = frames_rate("orthanc", orthanc.url, ["/dicom-web" + t for t in targets], {},
                                                args.seconds, args.reps)
        print(f"frames/s: cairn {results['cairn_frames']['rps']:.0f}, orthanc {results['orthanc_frames']['rps']:.0f}")
        results["cairn_rss"] = rss(node.proc.pid)
    finally:
        orthanc.stop()
        node.stop()

    big = work / "cairn-million"
    marker = work / f"cairn-million-{args.qido_instances}.complete"
    if not marker.exists():
        subprocess.run(["rm", "-rf", str(big)], check=True)
        print(f"writing {args.qido_instances} index rows ...")
        build_million(big, args.qido_instances, args.seed)
        marker.touch()
    node = CairnNode(big, "big")
    try:
        rng = random.Random(args.seed)
        queries = []
        for _ in range(300):
            year = 2015 + rng.randrange(10)
            month = 1 + rng.randrange(10)
            queries.append({"Modality": rng.choice(["CT", "MR", "PT"]),
                            "StudyDate": f"{year}{month:02d}01-{year}{month + 2:02d}28", "limit": "100"})
        qido_latencies(node, queries[:20])
        p50, p95, mean_count = qido_latencies(node, queries)
        results["qido"] = {"p50": p50, "p95": p95, "results": mean_count}
        print(f"QIDO over {args.qido_instances}: p50 {p50 * 1000:.1f} ms, p95 {p95 * 1000:.1f} ms, {mean_count:.0f} results on average")
    finally:
        node.stop()

    m_ratio = results["orthanc_metadata"] / results["cairn_metadata"]
    f_ratio = results["cairn_frames"]["rps"] / results["orthanc_frames"]["rps"]
    lines = [
        f"## DICOMweb (`Tools/bench/dicomweb_bench.py`, Orthanc 1.10 + DICOMweb plugin 1.7, same run, seed {args.seed})",
        "",
        "| measure | Cairn | Orthanc | ratio | target |",
        "|---|---|---|---|---|",
        f"| series metadata, {args.instances} instances (median of {args.reps * 3}) | {results['cairn_metadata'] * 1000:.0f} ms "
        f"| {results['orthanc_metadata'] * 1000:.0f} ms | {m_ratio:.1f}x faster | <= 150 ms and >= 3x |",
        f"| frames, 1 per request, 16 connections (median of {args.reps} x {args.seconds} s) | {results['cairn_frames']['rps']:.0f}/s "
        f"(p99 {results['cairn_frames']['p99_us'] / 1000:.1f} ms) | {results['orthanc_frames']['rps']:.0f}/s "
        f"(p99 {results['orthanc_frames']['p99_us'] / 1000:.1f} ms) | {f_ratio:.1f}x | >= 2x |",
        f"| QIDO instances, Modality + StudyDate, limit 100, over {args.qido_instances:,} | p50 {results['qido']['p50'] * 1000:.1f} ms, "
        f"p95 {results['qido']['p95'] * 1000:.1f} ms ({results['qido']['results']:.0f} results) | - | - | p95 <= 50 ms |",
        "",
        f"Node RSS after the frames runs: {results['cairn_rss'] / 1e6:.0f} MB.",
    ]
    text = "\n".join(lines) + "\n"
    print(text)
    (OUT / "dicomweb-latest.md").write_text(text)


if __name__ == "__main__":
    main()
