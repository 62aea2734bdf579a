"""Datasets through the CLI on a generated DICOM corpus, checked against pydicom: indexed counts
and breakdowns, the de-identification gate, and erasing a subject."""
import collections
import subprocess
import sys
from pathlib import Path

import pydicom
import pytest

from conftest import GATED, REPO, sha256_digest


@pytest.fixture(scope="module")
def corpus(tmp_path_factory):
    out = tmp_path_factory.mktemp("dicom-corpus")
    subprocess.run([sys.executable, str(REPO / "Tools" / "gen" / "make_corpus.py"), str(out), "--ct", "30", "--mr", "12",
                    "--dx", "1", "--jpeg", "12", "--slices-per-series", "10", "--seed", "5"], check=True, capture_output=True)
    return out


def expected_counts(files):
    subjects, studies, series = set(), set(), set()
    breakdown = {k: collections.Counter() for k in ("Modality", "BodyPartExamined", "Manufacturer", "PatientSex")}
    for f in files:
        ds = pydicom.dcmread(f, stop_before_pixels=True)
        subjects.add(ds.PatientID)
        studies.add(ds.StudyInstanceUID)
        series.add(ds.SeriesInstanceUID)
        for k in breakdown:
            breakdown[k][str(ds.get(k, "(none)")) or "(none)"] += 1
    return subjects, studies, series, breakdown


def test_dataset_show_agrees_with_pydicom(store, corpus):
    store.run("dataset", "create", *GATED, "lung", "--title", "Lung CT", "--cancer-type", "lung")
    summary = store.json("ingest", "--dataset", "lung", str(corpus))
    files = sorted(corpus.glob("*.dcm"))
    assert summary["instances"] == len(files) and summary["refused"] == 0 and summary["failed"] == 0
    shown = store.json("dataset", "show", "lung")
    subjects, studies, series, breakdown = expected_counts(files)
    assert (shown["subjects"], shown["studies"], shown["series"], shown["instances"]) == \
        (len(subjects), len(studies), len(series), len(files))
    assert shown["by_modality"] == dict(breakdown["Modality"])
    assert shown["by_body_part"] == dict(breakdown["BodyPartExamined"])
    assert shown["by_manufacturer"] == dict(breakdown["Manufacturer"])
    assert shown["by_sex"] == dict(breakdown["PatientSex"])
    assert shown["cancer_type"] == "lung" and shown["gated"] is True


def test_the_gate_refuses_identified_files_and_leaves_nothing(store, corpus, tmp_path):
    source = sorted(corpus.glob("ct_*.dcm"))[0]
    ds = pydicom.dcmread(source)
    del ds.PatientIdentityRemoved
    ds.PatientName = "Doe^Jane"
    ds.PatientBirthDate = "19600101"
    named = tmp_path / "named.dcm"
    ds.save_as(named, enforce_file_format=True)
    before = store.json("stats")["blobs"]
    proc = store.run("ingest", "--json", str(named), check=False)
    assert proc.returncode == 1
    assert b"refused" in proc.stderr and b"PatientName" in proc.stderr and b"PatientBirthDate" in proc.stderr
    assert store.json("stats")["blobs"] == before
    assert sha256_digest(named.read_bytes()) not in {e["digest"] for e in store.ndjson("ls")}
    assert list((store.root / "tmp").iterdir()) == []
    # Declaring the identity removed, or an ungated dataset, lets it in.
    store.run("dataset", "create", "research", "--deid-policy", "accept")
    assert store.json("ingest", "--dataset", "research", str(named))["ingested"] == 1
    assert store.json("dataset", "show", "research")["gated"] is False


def test_erasing_a_subject_removes_its_instances_and_gc_its_blobs(store, corpus):
    store.run("dataset", "create", *GATED, "lung")
    store.run("dataset", "create", *GATED, "copy")
    store.run("ingest", "--dataset", "lung", str(corpus))
    shared = sorted(corpus.glob("ct_*.dcm"))[0]
    store.run("ingest", "--dataset", "copy", str(shared))
    subject = pydicom.dcmread(shared, stop_before_pixels=True).PatientID
    own = [f for f in corpus.glob("*.dcm") if pydicom.dcmread(f, stop_before_pixels=True).PatientID == subject]
    before = store.json("dataset", "show", "lung")
    erased = store.json("dataset", "erase-subject", "lung", subject)
    assert erased["removed"] == len(own)
    after = store.json("dataset", "show", "lung")
    assert after["subjects"] == before["subjects"] - 1
    assert after["instances"] == before["instances"] - len(own)
    assert after["erasures"] == 1
    report = store.json("gc")
    assert len(report["unreferenced"]) == len(own) - 1  # the file also in "copy" stays
    assert sha256_digest(shared.read_bytes()) not in report["unreferenced"]
    assert store.cat(sha256_digest(shared.read_bytes())) == shared.read_bytes()
    assert store.run("verify").returncode == 0


def seek_table_frame_starts(blob: bytes):
    """Original offsets where the frames of a seekable zstd blob start, from its seek table."""
    import struct
    count = struct.unpack_from("<I", blob, len(blob) - 9)[0]
    table = blob[len(blob) - 9 - 12 * count:len(blob) - 9]
    starts, position = [], 0
    for i in range(count):
        starts.append(position)
        position += struct.unpack_from("<I", table, 12 * i + 4)[0]
    return starts


def test_pixel_data_offsets_match_pydicom_and_start_blob_frames(store, corpus):
    store.run("ingest", str(corpus))
    entries = {e["name"]: e for e in store.ndjson("ls", "--dataset", "default")}
    checked = 0
    for path in sorted(corpus.glob("*.dcm")):
        entry = entries[path.name]
        ds = pydicom.dcmread(path, defer_size=1024)
        raw = ds.get_item(0x7FE00010)
        assert entry["dicom"]["pixel_data_offset"] == raw.file_tell, path.name
        if entry["codec"] not in ("zstd", "pixel"):
            continue  # JPEG captures are stored raw: no frames to check
        starts = set(seek_table_frame_starts(open(store.path(entry["digest"]), "rb").read()))
        assert raw.file_tell in starts, path.name
        for offset in entry["dicom"].get("frame_offsets", []):
            assert offset in starts, path.name
        checked += 1
    assert checked > 30
