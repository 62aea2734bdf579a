#!/usr/bin/env python3
"""Node serving benchmarks against Orthanc and nginx, same client (wrk), same run, same corpus
(by default the real-derived one, Tools/gen/make_real_corpus.py).

- whole-file GETs: Cairn `GET /v1/blobs/{digest}` (stored compressed, with a token) against
  Orthanc 1.10 `GET /instances/{id}/file` (storage uncompressed, loaded with `POST /instances`);
  MB/s of original bytes, and stored size of each.
- random 64 KiB ranges: Cairn against nginx serving the raw files (`Range:`); requests/s, p50/p99,
  and the node's CPU per request (/proc/PID/stat over the run): with the decoded-frame cache
  warm (the corpus fits), with a cache of a quarter of the corpus, and with the cache off.
- sustained mixed load (80% ranges, 20% whole files) on Cairn: errors and resident memory over time.

Each figure is the median of --reps runs of --seconds each. Run by Tools/bench/run.sh.
"""
import argparse
import json
import os
import random
import shutil
import signal
import statistics
import subprocess
import sys
import time
from pathlib import Path

import requests

REPO = Path(__file__).resolve().parents[2]
RELEASE = REPO / ".build" / "release"
OUT = REPO / "Tools" / "bench" / "out"
RANGE = 64 * 1024

LUA_COMMON = r"""
local counter = 0
local threads = {}
function setup(thread)
  thread:set("id", counter)
  table.insert(threads, thread)
  counter = counter + 1
end
function init(args)
  math.randomseed(os.time() * 1000 + id)
end
function done(summary, latency, requests)
  io.write(string.format('RESULT {"requests": %d, "bytes": %d, "seconds": %f, "p50_us": %d, "p99_us": %d, ' ..
    '"errors": %d, "non2xx": %d}\n', summary.requests, summary.bytes, summary.duration / 1e6,
    latency:percentile(50), latency:percentile(99),
    summary.errors.connect + summary.errors.read + summary.errors.write + summary.errors.timeout,
    summary.errors.status))
end
"""


def lua_script(path: Path, targets, mode: str, auth: str | None, accept_zstd=False):
    """targets: list of (url path, size). mode: whole, range, or mixed (80% ranges)."""
    lines = ["local targets = {"]
    lines += [f'  {{"{p}", {s}}},' for p, s in targets]
    lines.append("}")
    fields = ([f'["Authorization"] = "Bearer {auth}"'] if auth else []) + (['["Accept-Encoding"] = "zstd"'] if accept_zstd else [])
    header = "headers = {" + ", ".join(fields) + "}"
    lines.append(LUA_COMMON)
    lines.append(f"""
local mode = "{mode}"
request = function()
  local t = targets[math.random(#targets)]
  local {header}
  local ranged = mode == "range" or (mode == "mixed" and math.random() < 0.8)
  if ranged and t[2] > {RANGE} then
    local start = math.random(0, t[2] - {RANGE})
    headers["Range"] = "bytes=" .. start .. "-" .. (start + {RANGE} - 1)
  end
  return wrk.format("GET", t[1], headers)
end
""")
    path.write_text("\n".join(lines))


def wrk(url: str, script: Path, seconds: int, connections: int):
    out = subprocess.run(["wrk", "-t2", f"-c{connections}", f"-d{seconds}s", "--latency", "-s", str(script), url],
                         capture_output=True, text=True, check=True).stdout
    line = next(l for l in out.splitlines() if l.startswith("RESULT "))
    result = json.loads(line[len("RESULT "):])
    result["rps"] = result["requests"] / result["seconds"]
    result["mbps"] = result["bytes"] / result["seconds"] / 1e6
    return result


def median_of(runs, key):
    return statistics.median(r[key] for r in runs)


def free_port():
    import socket
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_http(url, timeout=60, **kwargs):
    deadline = time.time() + timeout
    while time.time() < deadline:
        try:
            if requests.get(url, timeout=2, **kwargs).status_code < 500:
                return
        except requests.RequestException:
            pass
        time.sleep(0.2)
    sys.exit(f"{url} did not come up")


def dir_bytes(path: Path):
    return sum(p.stat().st_size for p in path.rglob("*") if p.is_file())


def cpu_seconds(pid):
    """User + system CPU seconds the process has used (/proc/PID/stat fields 14 and 15)."""
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def rss(pid):
    with open(f"/proc/{pid}/status") as f:
        return next(int(l.split()[1]) * 1024 for l in f if l.startswith("VmRSS:"))


class Cairn:
    def __init__(self, files, work: Path, ingest_args=()):
        self.work = work
        self.data = work / "cairn-data"
        shutil.rmtree(self.data, ignore_errors=True)
        self.cairn = str(RELEASE / "cairn")
        run = self.run
        run("init")
        run("dataset", "create", "bench", "--deid-policy", "accept")
        run("ingest", "--dataset", "bench", *ingest_args, *map(str, files))
        self.stored = json.loads(run("stats", "--json").stdout)["stored_bytes"]
        self.token = run("token", "issue", "--subject", "bench", "--datasets", "bench", "--ttl", "1d").stdout.strip()
        self.monitor = run("token", "issue", "--subject", "bench-monitor", "--scope", "monitor", "--ttl", "1d").stdout.strip()
        entries = [json.loads(l) for l in run("ls", "--dataset", "bench", "--json").stdout.splitlines() if l.strip()]
        self.targets = [(f"/v1/blobs/{e['digest']}", e["size"]) for e in entries]
        self.proc = None
        self.start()

    def run(self, *args):
        return subprocess.run([self.cairn, *args, "--data", str(self.data)], capture_output=True, text=True, check=True)

    def start(self, read_cache_bytes=None):
        """(Re)starts the node; `read_cache_bytes` None keeps the default (an eighth of memory)."""
        if self.proc:
            self.stop()
        config = self.work / "cairn-node.json"
        config.write_text(json.dumps({} if read_cache_bytes is None else {"read_cache_bytes": read_cache_bytes}))
        self.port = free_port()
        self.log = open(self.work / "cairn-node.log", "a")
        self.proc = subprocess.Popen([self.cairn, "node", "serve", "--data", str(self.data), "--config", str(config),
                                      "--listen", f"127.0.0.1:{self.port}"], stdout=self.log, stderr=self.log)
        self.url = f"http://127.0.0.1:{self.port}"
        wait_http(self.url + "/healthz")

    def cache(self):
        """The frame cache's figures from /metrics."""
        text = requests.get(self.url + "/metrics", headers={"Authorization": f"Bearer {self.monitor}"}, timeout=10).text
        figures = {}
        for line in text.splitlines():
            if line.startswith("cairn_frame_cache"):
                name, value = line.rsplit(" ", 1)
                figures[name] = float(value)
        return figures

    def warm(self):
        """Reads every blob once, whole, so every frame has been decoded (and cached)."""
        with requests.Session() as session:
            for path, _ in self.targets:
                session.get(self.url + path, headers={"Authorization": f"Bearer {self.token}"}, timeout=120).raise_for_status()

    def stop(self):
        self.proc.send_signal(signal.SIGTERM)
        self.proc.wait(timeout=60)
        self.proc = None


class Orthanc:
    """Orthanc on a free port, storage uncompressed, loaded with `files`; `extra` adds settings
    (the DICOMweb benchmark loads the plugin with it)."""

    def __init__(self, files, work: Path, extra=None):
        root = work / "orthanc"
        shutil.rmtree(root, ignore_errors=True)
        root.mkdir(parents=True)
        self.port = free_port()
        config = {"Name": "bench", "StorageDirectory": str(root / "storage"), "IndexDirectory": str(root / "index"),
                  "HttpPort": self.port, "DicomServerEnabled": False, "AuthenticationEnabled": False,
                  "RemoteAccessAllowed": True, "StorageCompression": False, "Plugins": [], "HttpThreadsCount": 50,
                  "KeepAlive": True, "ConcurrentJobs": 2, **(extra or {})}
        (root / "orthanc.json").write_text(json.dumps(config))
        self.log = open(work / "orthanc.log", "w")
        self.proc = subprocess.Popen(["Orthanc", str(root / "orthanc.json")], stdout=self.log, stderr=self.log)
        self.url = f"http://127.0.0.1:{self.port}"
        wait_http(self.url + "/system")
        session = requests.Session()
        self.targets = []
        for f in files:
            answer = session.post(self.url + "/instances", data=f.read_bytes(), timeout=120)
            answer.raise_for_status()
            self.targets.append((f"/instances/{answer.json()['ID']}/file", f.stat().st_size))
        self.stored = dir_bytes(root / "storage")

    def stop(self):
        self.proc.send_signal(signal.SIGTERM)
        self.proc.wait(timeout=60)


class Nginx:
    def __init__(self, corpus: Path, files, work: Path):
        root = work / "nginx"
        shutil.rmtree(root, ignore_errors=True)
        root.mkdir(parents=True)
        self.port = free_port()
        (root / "nginx.conf").write_text(f"""
worker_processes 2;
pid {root}/nginx.pid;
error_log {root}/error.log;
events {{ worker_connections 1024; }}
http {{
  access_log off;
  sendfile on;
  keepalive_requests 100000;
  client_body_temp_path {root}/tmp;
  server {{
    listen 127.0.0.1:{self.port};
    location /files/ {{ alias {corpus}/; }}
  }}
}}
""")
        self.proc = subprocess.Popen(["nginx", "-c", str(root / "nginx.conf"), "-g", "daemon off;"],
                                     stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        self.url = f"http://127.0.0.1:{self.port}"
        self.targets = [(f"/files/{f.relative_to(corpus)}", f.stat().st_size) for f in files]
        wait_http(self.url + self.targets[0][0])

    def stop(self):
        self.proc.send_signal(signal.SIGQUIT)
        self.proc.wait(timeout=60)


def measure(name, url, targets, mode, auth, args, connections, accept_zstd=False, pid=None):
    """Medians of `args.reps` wrk runs; with `pid`, that process's CPU microseconds per request."""
    script = OUT / f"wrk-{name}-{mode}{'-zstd' if accept_zstd else ''}.lua"
    lua_script(script, targets, mode, auth, accept_zstd)
    runs = []
    for _ in range(args.reps):
        before = cpu_seconds(pid) if pid else 0
        run = wrk(url, script, args.seconds, connections)
        if pid:
            run["cpu_us"] = (cpu_seconds(pid) - before) * 1e6 / max(1, run["requests"])
            run["cores"] = (cpu_seconds(pid) - before) / run["seconds"]
        runs.append(run)
    for r in runs:
        if r["errors"] or r["non2xx"]:
            sys.exit(f"{name} {mode}: {r['errors']} socket errors, {r['non2xx']} non-2xx responses")
    result = {k: median_of(runs, k) for k in ("rps", "mbps", "p50_us", "p99_us") + (("cpu_us", "cores") if pid else ())}
    print(f"  {name} {mode}{' zstd' if accept_zstd else ''}: " + ", ".join(f"{k} {v:.1f}" for k, v in result.items()), flush=True)
    # Original bytes delivered: requests x mean file size (targets are drawn uniformly), which for
    # a zstd-encoded response is more than the bytes on the wire.
    result["original_mbps"] = result["rps"] * statistics.mean(size for _, size in targets) / 1e6
    return result


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--corpus", type=Path, required=True)
    parser.add_argument("--reps", type=int, default=3)
    parser.add_argument("--seconds", type=int, default=10)
    parser.add_argument("--sustain-seconds", type=int, default=600)
    parser.add_argument("--profile-seconds", type=int, default=8, help="perf profile of warm ranges (0: none)")
    parser.add_argument("--profile", choices=["archive", "balanced", "fast"],
                        help="ingest the corpus under this storage profile (default: the node's default, balanced)")
    args = parser.parse_args()
    args.corpus = args.corpus.resolve()
    files = sorted(p for p in args.corpus.rglob("*") if p.is_file())
    total = sum(f.stat().st_size for f in files)
    work = OUT / "serve"
    work.mkdir(parents=True, exist_ok=True)
    print(f"corpus: {len(files)} files, {total / 1e6:.0f} MB")

    cairn = Cairn(files, work, ["--profile", args.profile] if args.profile else [])
    orthanc = Orthanc(files, work)
    nginx = Nginx(args.corpus, files, work)
    lines = []
    try:
        # Warm the page cache for all three, and Cairn's frame cache, before any timing.
        for server, auth in ((orthanc, None), (nginx, None)):
            measure(f"warm-{type(server).__name__}", server.url, server.targets, "whole", auth,
                    argparse.Namespace(seconds=3, reps=1), 8)
        cairn.warm()
        pid = cairn.proc.pid
        whole_cairn = measure("cairn", cairn.url, cairn.targets, "whole", cairn.token, args, 16, pid=pid)
        whole_cairn_zstd = measure("cairn", cairn.url, cairn.targets, "whole", cairn.token, args, 16, accept_zstd=True, pid=pid)
        whole_orthanc = measure("orthanc", orthanc.url, orthanc.targets, "whole", None, args, 16, pid=orthanc.proc.pid)
        range_cairn = measure("cairn", cairn.url, cairn.targets, "range", cairn.token, args, 32, pid=pid)
        range_nginx = measure("nginx", nginx.url, nginx.targets, "range", None, args, 32)
        warm_cache = cairn.cache()
        # A cache of a quarter of the corpus (original bytes), warmed by the same random ranges.
        quarter = total // 4
        cairn.start(read_cache_bytes=quarter)
        measure("cairn-quarter-warmup", cairn.url, cairn.targets, "range", cairn.token,
                argparse.Namespace(seconds=2 * args.seconds, reps=1), 32)
        before = cairn.cache()
        range_quarter = measure("cairn-quarter", cairn.url, cairn.targets, "range", cairn.token, args, 32, pid=cairn.proc.pid)
        after = cairn.cache()
        hits = after.get("cairn_frame_cache_hits_total", 0) - before.get("cairn_frame_cache_hits_total", 0)
        misses = after.get("cairn_frame_cache_misses_total", 0) - before.get("cairn_frame_cache_misses_total", 0)
        quarter_hit_rate = hits / max(1, hits + misses)
        cairn.start(read_cache_bytes=0)
        range_off = measure("cairn-nocache", cairn.url, cairn.targets, "range", cairn.token, args, 32, pid=cairn.proc.pid)
        whole_off = measure("cairn-nocache", cairn.url, cairn.targets, "whole", cairn.token, args, 16, pid=cairn.proc.pid)
        cairn.start()
        cairn.warm()

        def ms(result):
            return f"{result['p50_us'] / 1000:.2f} / {result['p99_us'] / 1000:.2f}"

        lines += [
            f"## Node serving (`Tools/bench/serve_bench.py`, wrk -t2, medians of {args.reps} x {args.seconds} s)",
            f"Corpus: {len(files)} files, {total / 1e6:.0f} MB ({args.corpus.name}); stored by Cairn in the "
            f"{args.profile or 'default (balanced)'} profile.",
            "",
            "| measure | Cairn | anchor | ratio |",
            "|---|---|---|---|",
            f"| whole-file GETs, MB/s (c=16), frame cache warm | {whole_cairn['mbps']:.0f} | Orthanc {whole_orthanc['mbps']:.0f} | "
            f"{whole_cairn['mbps'] / whole_orthanc['mbps']:.2f}x |",
            f"| whole-file GETs, p50 / p99 ms | {ms(whole_cairn)} | Orthanc {ms(whole_orthanc)} | |",
            f"| whole-file GETs, cache off, MB/s | {whole_off['mbps']:.0f} | Orthanc {whole_orthanc['mbps']:.0f} | "
            f"{whole_off['mbps'] / whole_orthanc['mbps']:.2f}x |",
            f"| whole-file GETs with `Accept-Encoding: zstd`, original MB/s (wire MB/s) | "
            f"{whole_cairn_zstd['original_mbps']:.0f} ({whole_cairn_zstd['mbps']:.0f}) | Orthanc {whole_orthanc['mbps']:.0f} | "
            f"{whole_cairn_zstd['original_mbps'] / whole_orthanc['mbps']:.2f}x |",
            f"| stored bytes | {cairn.stored / 1e6:.0f} MB | Orthanc {orthanc.stored / 1e6:.0f} MB | "
            f"{orthanc.stored / cairn.stored:.2f}x smaller |",
            f"| random 64 KiB ranges, req/s (c=32), cache warm | {range_cairn['rps']:.0f} | nginx {range_nginx['rps']:.0f} | "
            f"{range_cairn['rps'] / range_nginx['rps']:.2f}x |",
            f"| p50 / p99 ms, cache warm | {ms(range_cairn)} | nginx {ms(range_nginx)} | "
            f"p99 {range_cairn['p99_us'] / range_nginx['p99_us']:.2f}x |",
            f"| node CPU per range, cache warm | {range_cairn['cpu_us']:.0f} us ({range_cairn['cores']:.2f} cores) | | |",
            f"| random 64 KiB ranges, cache of a quarter of the corpus ({quarter / 1e6:.0f} MB; {quarter_hit_rate * 100:.0f}% "
            f"of frames hit) | {range_quarter['rps']:.0f} | nginx {range_nginx['rps']:.0f} | {range_quarter['rps'] / range_nginx['rps']:.2f}x |",
            f"| p50 / p99 ms, quarter cache | {ms(range_quarter)} | | |",
            f"| node CPU per range, quarter cache | {range_quarter['cpu_us']:.0f} us | | |",
            f"| random 64 KiB ranges, cache off | {range_off['rps']:.0f} | nginx {range_nginx['rps']:.0f} | "
            f"{range_off['rps'] / range_nginx['rps']:.2f}x |",
            f"| p50 / p99 ms, cache off | {ms(range_off)} | | |",
            f"| node CPU per range, cache off | {range_off['cpu_us']:.0f} us | | |",
            "",
            f"Frame cache after the warm runs: {warm_cache.get('cairn_frame_cache_bytes', 0) / 1e6:.0f} MB in "
            f"{warm_cache.get('cairn_frame_cache_frames', 0):.0f} frames, {warm_cache.get('cairn_frame_cache_hits_total', 0):.0f} hits, "
            f"{warm_cache.get('cairn_frame_cache_misses_total', 0):.0f} misses, {warm_cache.get('cairn_frame_cache_evictions_total', 0):.0f} "
            f"evictions (capacity {warm_cache.get('cairn_frame_cache_capacity_bytes', 0) / 1e6:.0f} MB).",
        ]
        audit = json.loads(subprocess.run([str(RELEASE / "cairn-bench"), "audit-append", str(cairn.data), "256"],
                                          capture_output=True, text=True, check=True).stdout)
        share = range_cairn["rps"] / audit["per_s"]
        lines += [
            "",
            f"Audit: a batched append costs {audit['us_per_record']:.1f} us per record ({audit['per_s']:.0f} records/s, "
            f"batches of 256, one transaction each); at the warm range rate above that is {share * 100:.1f}% of the node's "
            f"time on one core (target <= 5%).",
        ]
        print("\n".join(lines), flush=True)
        if args.profile_seconds > 0:
            lines += profile(cairn, args.profile_seconds)
        if args.sustain_seconds > 0:
            lines += sustained(cairn, args.sustain_seconds)
    finally:
        for server in (cairn, orthanc, nginx):
            if getattr(server, "proc", None):
                server.stop()
    report = OUT / (f"serve-{args.profile}-latest.md" if args.profile else "serve-latest.md")
    report.write_text("\n".join(lines) + "\n")
    print(f"written to {report}")


def profile(cairn, seconds=8):
    """Where the node's CPU goes during warm random ranges: `perf record` on the node for
    seconds - 2 s of a wrk run, summed by shared object (the table docs/serving.md shows)."""
    if not shutil.which("perf"):
        return ["", "(no `perf` on this machine: no profile)"]
    script = OUT / "wrk-cairn-range.lua"
    data = OUT / "serve" / "perf.data"
    load = subprocess.Popen(["wrk", "-t2", "-c32", f"-d{seconds}s", "-s", str(script), cairn.url],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    time.sleep(1)
    subprocess.run(["perf", "record", "-F", "999", "-g", "-p", str(cairn.proc.pid), "-o", str(data), "--", "sleep", str(seconds - 2)],
                   capture_output=True, check=True)
    load.wait()
    report = subprocess.run(["perf", "report", "-i", str(data), "--no-children", "--sort", "dso", "--stdio", "-g", "none"],
                            capture_output=True, text=True, check=True).stdout
    rows = [line.split() for line in report.splitlines() if line.strip() and not line.startswith("#")]
    lines = ["", f"Profile of the node during warm random ranges (`perf record -F 999 -g`, {seconds - 2} s, by shared object; "
             "`cairn` includes the statically linked NIO, Hummingbird and Cairn):", "", "| where | share of node CPU |", "|---|---|"]
    lines += [f"| {row[1]} | {row[0]} |" for row in rows[:8] if len(row) >= 2]
    print("\n".join(lines), flush=True)
    return lines


def sustained(cairn, seconds):
    """Mixed load for `seconds`, RSS sampled every 10 s: no error, flat memory."""
    script = OUT / "wrk-cairn-mixed.lua"
    lua_script(script, cairn.targets, "mixed", cairn.token)
    samples = []
    proc = subprocess.Popen(["wrk", "-t2", "-c32", f"-d{seconds}s", "--latency", "-s", str(script), cairn.url],
                            stdout=subprocess.PIPE, text=True)
    start = time.time()
    while proc.poll() is None:
        time.sleep(10)
        if proc.poll() is None:
            samples.append((time.time() - start, rss(cairn.proc.pid)))
    out = proc.stdout.read()
    result = json.loads(next(l for l in out.splitlines() if l.startswith("RESULT "))[len("RESULT "):])
    first = statistics.median(s for _, s in samples[:3])
    last = statistics.median(s for _, s in samples[-3:])
    lines = [
        "",
        f"Sustained mixed load ({seconds} s, 80% random 64 KiB ranges, 20% whole files, c=32): "
        f"{result['requests']} requests, {result['requests'] / result['seconds']:.0f}/s, "
        f"{result['bytes'] / result['seconds'] / 1e6:.0f} MB/s, socket errors {result['errors']}, non-2xx {result['non2xx']}; "
        f"RSS first minute {first / 1e6:.0f} MB, last minute {last / 1e6:.0f} MB, max {max(s for _, s in samples) / 1e6:.0f} MB.",
    ]
    print(lines[-1], flush=True)
    return lines


if __name__ == "__main__":
    main()
