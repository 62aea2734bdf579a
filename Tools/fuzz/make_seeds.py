#!/usr/bin/env python3
"""Writes the seed inputs of one fuzz target into a folder (Tools/fuzz/run.sh calls it when the
target's corpus is empty). The DICOM parser's seeds are pydicom's test files, copied by run.sh."""
import hashlib
import json
import struct
import subprocess
import sys
from pathlib import Path

TOOLS = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(TOOLS))
from manifest_reference import canonical, entries_root  # noqa: E402


def write(out, name, data):
    (out / name).write_bytes(data)


def main(target, out):
    out.mkdir(parents=True, exist_ok=True)
    if target == "FuzzDeidGate":
        subprocess.run([sys.executable, str(TOOLS / "gen" / "make_identifiable.py"), str(out), "--seed", "1"],
                       check=True, capture_output=True)
    elif target == "FuzzByteRanges":
        # 8 bytes of representation size, then the header.
        for i, header in enumerate(["bytes=0-10", "bytes=0-10,20-", "bytes=-500", "bytes=5-,1-2,3-4",
                                    "bytes=0-0,2-2,4-4,6-6", "BYTES = 1-", "bytes=18446744073709551615-"]):
            write(out, f"seed{i}", struct.pack(">Q", 1 << 40) + header.encode())
    elif target == "FuzzTokens":
        # First byte odd: the harness signs the rest as the claims; even: the rest is a raw header.
        claims = [{"sub": "job", "exp": 1900000000, "nbf": 1700000000, "jti": "abc", "scope": "read", "datasets": ["ct"]},
                  {"sub": "job", "exp": 1900000000, "jti": "x", "scope": "read ingest", "datasets": [], "aud": ["fuzz-node"]},
                  {"sub": "job", "exp": 1700000000, "jti": "x", "scope": "admin", "datasets": ["a"]}]
        for i, c in enumerate(claims):
            write(out, f"seed{i}", bytes([1]) + json.dumps(c).encode())
        write(out, "raw0", bytes([0]) + b"Bearer eyJhbGciOiJFZERTQSJ9.eyJzdWIiOiJ4In0.AAAA")
    elif target == "FuzzHubIntake":
        for n in (0, 1, 3, 20):
            entries = sorted(({"digest": "sha256:" + hashlib.sha256(str(i).encode()).hexdigest(), "size": i,
                               "subject": f"S{i % 3}", "modality": "CT", "sex": "F"} for i in range(n)), key=lambda e: e["digest"])
            doc = {"type": "cairn.snapshot/v1", "node": "n", "dataset": "d", "seq": 1, "parent": None, "metadata": {"title": "t"},
                   "added": entries, "removed": [], "entries": n, "entries_root": entries_root(entries),
                   "summary": {"subjects": 3}, "created_at": "2026-11-29T00:00:00Z"}
            write(out, f"seed{n}", canonical(doc))
    elif target == "FuzzEntriesQuery":
        write(out, "seed0", b"sha256:" + b"a" * 64 + b"\x0010")
        write(out, "seed1", b"b" * 64)
    elif target == "FuzzDicomWeb":
        write(out, "seed0", b"b1\x00--b1\r\nContent-Type: application/dicom\r\n\r\nDICM\r\n--b1\r\n\r\nx\r\n--b1--\r\n")
        write(out, "seed1", b"PatientID=SUBJ*&StudyDate=20200101-20201231&limit=10&offset=5&includefield=all")
        write(out, "seed2", b'multipart/related; type="application/dicom"; transfer-syntax=*, */*;q=0.1')
    else:
        sys.exit(f"no seeds for {target}")


if __name__ == "__main__":
    main(sys.argv[1], Path(sys.argv[2]))
