"""The de-identification gate fails closed (issue 10): every way to damage an identifiable file
(Tools/gen/make_identifiable.py) is refused by `cairn ingest` and by HTTP uploads into a gated
dataset, with or without --allow-non-dicom, and nothing is stored; complete de-identified files
still go in, and files that are not DICOM go in only where the dataset allows them."""
import subprocess
import sys
from pathlib import Path

import pydicom
import pytest
import requests

from conftest import REPO, Store, sha256_digest
from node import Node

sys.path.insert(0, str(REPO / "Tools" / "gen"))
from make_identifiable import encode, identifiable_dataset  # noqa: E402

GENERATOR = REPO / "Tools" / "gen" / "make_identifiable.py"


@pytest.fixture(scope="module")
def damaged(tmp_path_factory):
    out = tmp_path_factory.mktemp("identifiable")
    listing = subprocess.run([sys.executable, str(GENERATOR), str(out), "--seed", "1"], check=True,
                             capture_output=True, text=True).stdout
    what = dict(line.split("\t", 1) for line in listing.splitlines())
    assert len(what) >= 60, "the generator should write every damage"
    return out, what


def refused_paths(proc):
    """The paths `cairn ingest` reports as refused ("cairn: refused PATH: reason" on stderr)."""
    out = set()
    for line in proc.stderr.decode().splitlines():
        line = line.removeprefix("cairn: ")
        if line.startswith("refused "):
            out.add(line.removeprefix("refused ").split(": ", 1)[0])
    return out


def clean_instance(path: Path, declare_removed: bool):
    """The identifiable instance with every attribute the Basic Profile removes taken out."""
    ds = identifiable_dataset()
    for keyword in ("PatientName", "PatientBirthDate", "StudyDate", "PatientSex"):
        delattr(ds, keyword)
    if declare_removed:
        ds.PatientIdentityRemoved = "YES"
    path.write_bytes(encode(ds))
    return path


@pytest.mark.parametrize("allow_non_dicom", [False, True])
def test_every_damaged_identifiable_file_is_refused(store, damaged, allow_non_dicom):
    folder, what = damaged
    args = ["dataset", "create", "gated"] + (["--allow-non-dicom"] if allow_non_dicom else [])
    store.run(*args)
    assert store.json("dataset", "show", "gated")["allow_non_dicom"] is allow_non_dicom
    proc = store.run("ingest", "--dataset", "gated", str(folder), check=False)
    assert proc.returncode == 1
    refused = {Path(p).name for p in refused_paths(proc)}
    # A file cut inside the 128-byte preamble holds only its zero bytes, nothing of the instance:
    # a dataset that allows files that are not DICOM may take it.
    harmless = {name for name in what if (folder / name).read_bytes().count(0) == (folder / name).stat().st_size}
    let_in = sorted(set(what) - refused - (harmless if allow_non_dicom else set()))
    assert not let_in, "stored: " + "; ".join(f"{name} ({what[name]})" for name in let_in)
    stored = {e.get("name") for e in store.ndjson("ls", "--dataset", "gated")}
    assert stored == ({n for n in harmless} if allow_non_dicom else set())


def test_refusals_say_why(store, damaged, tmp_path):
    folder, _ = damaged
    proc = store.run("ingest", str(folder / "bare-implicit-cut.dcm"), str(folder / "wrapped.zip"),
                     str(folder / "cut-element-05.dcm"), str(folder / "duplicate-name.dcm"),
                     str(folder / "private-name.dcm"), str(folder / "deflated-cut-10.dcm"), check=False)
    err = proc.stderr.decode()
    assert "bare-implicit-cut.dcm: cannot be checked for identifiers: starts like a DICOM data set" in err
    assert "wrapped.zip: cannot be checked for identifiers: a zip archive" in err
    assert "cut-element-05.dcm: is not de-identified" in err
    # A de-identified file cut at an element boundary before its series UID parses, and is incomplete.
    ds = pydicom.dcmread(clean_instance(tmp_path / "whole.dcm", declare_removed=True))
    del ds.SeriesInstanceUID
    ds.save_as(tmp_path / "no-series.dcm", enforce_file_format=True)
    proc = store.run("ingest", str(tmp_path / "no-series.dcm"), check=False)
    assert "no-series.dcm: cannot be checked for identifiers: an incomplete instance: no SeriesInstanceUID" \
        in proc.stderr.decode()
    assert "duplicate-name.dcm: cannot be checked for identifiers: (0010,0010)" in err
    assert "private-name.dcm: is not de-identified (PS3.15 Basic Profile): (0012,0062) PatientIdentityRemoved: the file " \
        "does not declare YES" in err
    assert "(0009,1001) private attribute: private attributes must be removed" in err
    assert "deflated-cut-10.dcm: cannot be checked" in err


def test_clean_instances_and_plain_files(store, tmp_path):
    declared = clean_instance(tmp_path / "declared.dcm", declare_removed=True)
    undeclared = clean_instance(tmp_path / "undeclared.dcm", declare_removed=False)
    text = tmp_path / "notes.txt"
    text.write_bytes(b"segmentation notes, no DICOM here\n")
    store.run("dataset", "create", "gated", "--no-text-review")
    store.run("dataset", "create", "loose", "--allow-non-dicom", "--no-text-review")
    fresh = Store(tmp_path / "fresh")
    fresh.run("init")
    refused = fresh.run("ingest", str(text), check=False)
    assert refused.returncode == 1 and "is not DICOM" in refused.stderr.decode(), "init's default dataset is gated"
    assert fresh.json("dataset", "show", "default")["allow_non_dicom"] is False
    # Clean or not, a file that does not declare Patient Identity Removed is refused.
    proc = store.run("ingest", "--dataset", "gated", str(declared), str(undeclared), check=False)
    assert proc.returncode == 1
    assert "undeclared.dcm: is not de-identified (PS3.15 Basic Profile): (0012,0062) PatientIdentityRemoved" \
        in proc.stderr.decode()
    assert store.cat(sha256_digest(declared.read_bytes())) == declared.read_bytes()
    assert pydicom.dcmread(declared).SOPInstanceUID == "1.2.826.0.1.3680043.8.498.1001"
    assert [e["digest"] for e in store.ndjson("ls", "--dataset", "gated")] == [sha256_digest(declared.read_bytes())]
    proc = store.run("ingest", "--dataset", "gated", str(text), check=False)
    assert proc.returncode == 1
    assert "is not DICOM" in proc.stderr.decode() and "--allow-non-dicom" in proc.stderr.decode()
    assert store.json("ingest", "--dataset", "loose", str(text))["ingested"] == 1
    shown = store.run("dataset", "show", "loose").stdout.decode()
    assert "files that are not DICOM allowed" in shown


def test_uploads_go_through_the_same_gate(store, tmp_path, damaged):
    folder, what = damaged
    store.run("dataset", "create", "gated", "--allow-non-dicom", "--no-text-review")
    node = Node(store)
    try:
        headers = node.headers(node.token(datasets="gated", scope="ingest"))
        for name in sorted(what):
            body = (folder / name).read_bytes()
            if body.count(0) == len(body):
                continue  # zero bytes of a preamble only: see above
            r = requests.post(f"{node.url}/v1/datasets/gated/instances", data=body, headers=headers, timeout=30)
            assert r.status_code == 422, f"{name} ({what[name]}): {r.status_code} {r.text}"
            assert r.json()["error"] == "refused"
        clean = clean_instance(tmp_path / "clean.dcm", declare_removed=True)
        r = requests.post(f"{node.url}/v1/datasets/gated/instances", data=clean.read_bytes(), headers=headers, timeout=30)
        assert r.status_code == 201 and r.json()["instance"] is True
    finally:
        node.stop()
    assert [e["digest"] for e in store.ndjson("ls", "--dataset", "gated")] == [sha256_digest(clean.read_bytes())]
