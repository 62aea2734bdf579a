#!/usr/bin/env python3
"""What the de-identification gate costs (issue 22): the same release binary ingests the generated
corpus into an ungated dataset (`--deid-policy accept`: files are parsed and indexed, never judged)
and into a gated one that accepts the options the corpus declares (every file judged against all of
PS3.15 Table E.1-1), alternating, medians of --reps; then one core parses headers with and without
the verdict (cairn-bench dicom-headers). Target: gated ingest >= 0.9x ungated files/s, so the full
table costs ingest at most a tenth of what it did with no gate at all.

    Tools/bench/run.sh --gate-only        (GATE_ARGS="--reps 5")
"""
import argparse
import json
import statistics
import subprocess
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
RELEASE = REPO / ".build" / "release"
OPTIONS = "retain-longitudinal-modified-dates,retain-patient-characteristics"


def sh(*args):
    return subprocess.run([str(a) for a in args], check=True, capture_output=True, text=True).stdout


def ingest(corpus: Path, work: Path, jobs: int, gated: bool) -> float:
    data = work / f"gate-store-{'gated' if gated else 'open'}-{time.monotonic_ns()}"
    sh(RELEASE / "cairn", "init", "--data", data)
    policy = ["--deid-options", OPTIONS] if gated else ["--deid-policy", "accept"]
    sh(RELEASE / "cairn", "dataset", "create", "bench", *policy, "--data", data)
    if gated:
        # The corpus's kept text, reviewed once before ingest (not timed): ingest then checks each value.
        sh(RELEASE / "cairn", "gate", "review", "--dataset", "bench", "--accept-all", "--data", data, corpus)
    sh("sync")
    summary = json.loads(sh(RELEASE / "cairn", "ingest", "--json", "--jobs", jobs, "--dataset", "bench", "--data", data,
                            corpus))
    assert summary["failed"] == 0 and summary["refused"] == 0, summary
    subprocess.run(["rm", "-rf", str(data)], check=True)
    return summary["files"] / summary["seconds"]


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--corpus", type=Path, required=True)
    parser.add_argument("--work", type=Path, default=REPO / "Tools" / "bench" / "out")
    parser.add_argument("--reps", type=int, default=3)
    parser.add_argument("--jobs", type=int, default=2)
    parser.add_argument("--seconds", type=float, default=3.0)
    args = parser.parse_args()
    args.work.mkdir(parents=True, exist_ok=True)
    files = len(list(args.corpus.glob("*.dcm")))
    open_rates, gated_rates = [], []
    for _ in range(args.reps):
        open_rates.append(ingest(args.corpus, args.work, args.jobs, gated=False))
        gated_rates.append(ingest(args.corpus, args.work, args.jobs, gated=True))
    with_gate, without = [], []
    for _ in range(args.reps):
        without.append(json.loads(sh(RELEASE / "cairn-bench", "dicom-headers", args.corpus, args.seconds, "parse")))
        with_gate.append(json.loads(sh(RELEASE / "cairn-bench", "dicom-headers", args.corpus, args.seconds)))
    ungated, gated = statistics.median(open_rates), statistics.median(gated_rates)
    parse_rate, gate_rate = (statistics.median(h["per_s"] for h in r) for r in (without, with_gate))
    parse_p50, gate_p50 = (statistics.median(h["p50_us"] for h in r) for r in (without, with_gate))
    rows = [
        ("figure", "gated (full table)", "ungated (same run)", "ratio", "target"),
        (f"ingest --jobs {args.jobs}, {files} files (files/s)", f"{gated:.0f}", f"{ungated:.0f}", f"{gated / ungated:.2f}x",
         ">= 0.90x"),
        ("header parse + index (+ verdict), 1 core (/s)", f"{gate_rate:.0f}", f"{parse_rate:.0f}",
         f"{gate_rate / parse_rate:.2f}x", ""),
        ("  p50 per header (us)", f"{gate_p50:.1f}", f"{parse_p50:.1f}", f"+{gate_p50 - parse_p50:.1f} us", ""),
    ]
    width = [max(len(r[i]) for r in rows) for i in range(5)]
    lines = []
    for r in rows:
        lines.append("| " + " | ".join(c.ljust(width[i]) for i, c in enumerate(r)) + " |")
        if len(lines) == 1:
            lines.append("|" + "|".join("-" * (w + 2) for w in width) + "|")
    table = "\n".join(lines)
    print(f"## gate cost: {args.reps} reps, medians (ingest runs: ungated {[round(r) for r in open_rates]}, "
          f"gated {[round(r) for r in gated_rates]})\n\n{table}")
    (args.work / "gate-latest.md").write_text(table + "\n")


if __name__ == "__main__":
    main()
