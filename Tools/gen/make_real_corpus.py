#!/usr/bin/env python3
"""Writes a serving corpus derived from real vendor images: copies of the five full-size
uncompressed instances of ../shared/dicom-real (CT, MR, two radiographs, an RGB ultrasound; the
same files are in the pydicom-data package), each with fresh study, series and instance UIDs and
a pseudonym, so each copy is a distinct blob with real pixel statistics.

    python3 Tools/gen/make_real_corpus.py OUT_DIR [--real ../shared/dicom-real] [--ct 300] [--mr 120]
        [--us 40] [--cr 20] [--seed 1]

A CT-heavy mix, as a hospital's archive is: per copy of a subject, one study, one series.
"""
import argparse
import random
import sys
from pathlib import Path

import pydicom
from pydicom.uid import generate_uid

SOURCES = {"ct": ["693_UNCI.dcm"], "mr": ["MR2_UNCI.dcm"], "us": ["US1_UNCI.dcm"], "cr": ["RG1_UNCI.dcm", "RG3_UNCI.dcm"]}


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("out", type=Path)
    parser.add_argument("--real", type=Path, default=Path(__file__).resolve().parents[3] / "shared" / "dicom-real")
    parser.add_argument("--ct", type=int, default=300)
    parser.add_argument("--mr", type=int, default=120)
    parser.add_argument("--us", type=int, default=40)
    parser.add_argument("--cr", type=int, default=20, help="copies of each of the two radiographs")
    parser.add_argument("--seed", type=int, default=1)
    args = parser.parse_args()
    missing = [name for names in SOURCES.values() for name in names if not (args.real / name).is_file()]
    if missing:
        sys.exit(f"{args.real} lacks {', '.join(missing)} (the five images of pydicom-data's WG04 set)")
    rng = random.Random(args.seed)
    args.out.mkdir(parents=True, exist_ok=True)
    count = 0
    for kind, names in SOURCES.items():
        for name in names:
            source = pydicom.dcmread(args.real / name)
            for copy in range(getattr(args, kind)):
                ds = source.copy()
                subject = f"REAL{rng.randrange(10**6):06d}"
                ds.PatientID = subject
                ds.PatientName = subject
                ds.StudyInstanceUID = generate_uid()
                ds.SeriesInstanceUID = generate_uid()
                ds.SOPInstanceUID = generate_uid()
                ds.file_meta.MediaStorageSOPInstanceUID = ds.SOPInstanceUID
                ds.InstanceNumber = copy + 1
                target = args.out / kind / f"{Path(name).stem}-{copy:04d}.dcm"
                target.parent.mkdir(exist_ok=True)
                ds.save_as(target, enforce_file_format=True)
                count += 1
    total = sum(p.stat().st_size for p in args.out.rglob("*.dcm"))
    print(f"{count} instances, {total / 1e6:.0f} MB in {args.out}")


if __name__ == "__main__":
    main()
