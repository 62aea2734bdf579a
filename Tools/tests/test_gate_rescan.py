"""`cairn gate rescan` re-judges what a dataset holds under its gate's current rules, and
`--quarantine` takes what fails out of the dataset (issue 22): a leaked file is found, taken out,
and no longer served, mounted, counted, searched or published; `gate release` puts it back."""
import json

import pytest
import requests

from basic_profile import declare
from conftest import Store, sha256_digest, wait_until
from node import Node
from test_basic_profile import base_instance, save
from test_mount import Mount


@pytest.fixture
def leaked(tmp_path):
    """A dataset of three subjects whose policy once accepted clean-descriptors; one file used it
    to keep a Study Description that names its patient."""
    store = Store(tmp_path / "data")
    store.run("init")
    store.run("dataset", "create", "lung", "--searchable", "--cancer-type", "lung",
              "--deid-options", "retain-patient-characteristics,clean-descriptors", "--no-text-review")
    paths = []
    for i, subject in enumerate(["SUBJ-0001", "SUBJ-0002", "SUBJ-0003"]):
        ds = base_instance(subject=subject)
        ds.PatientSex = "F"
        options = ["retain-patient-characteristics"]
        if i == 1:
            ds.StudyDescription = "Follow-up of John Doe after lobectomy"
            options.append("clean-descriptors")
        declare(ds, options)
        paths.append(save(ds, tmp_path / f"{subject}.dcm"))
    assert store.json("ingest", "--dataset", "lung", *map(str, paths))["ingested"] == 3
    return store, paths, sha256_digest(paths[1].read_bytes())


def test_rescan_finds_quarantine_takes_out_and_release_puts_back(leaked, tmp_path):
    store, paths, digest = leaked
    assert store.json("dataset", "publish", "lung", "--node-id", "test-node")["added"] == 3
    clean = store.run("gate", "rescan", "--dataset", "lung")
    assert clean.returncode == 0 and b"3 files checked, 0 would now be refused" in clean.stdout
    # The provider tightens the policy: the description is no longer accepted.
    store.run("dataset", "set", "lung", "--deid-options", "retain-patient-characteristics")
    found = store.run("gate", "rescan", "--dataset", "lung", "--json", check=False)
    assert found.returncode == 1
    report = json.loads(found.stdout)
    assert [r["digest"] for r in report["refused"]] == [digest]
    assert "(0008,1030) StudyDescription" in report["refused"][0]["reason"]
    assert report["quarantined"] == 0 and store.json("dataset", "show", "lung")["instances"] == 3

    node = Node(store, config={"search_secret": "rescan-test-secret-0123", "min_count": 1})
    subjects = lambda: {c["id"]: c["subjects_count"] for c in requests.post(
        f"{node.url}/eucaim/search", json={"ast": {"operand": "OR", "children": []}, "id": "q"}, timeout=30,
        headers={"Authorization": "Secret rescan-test-secret-0123"}).json()["collections"]}
    mount = Mount(store, tmp_path / "mnt", "lung")
    try:
        token = node.token(datasets="lung")
        assert node.get(f"/v1/blobs/{digest}", token).status_code == 200
        count_files = lambda: sum(1 for p in mount.point.rglob("*.dcm"))
        assert wait_until(lambda: count_files() == 3, 20, "three files in the mount")
        assert subjects() == {"lung": 3}

        taken = store.run("gate", "rescan", "--dataset", "lung", "--quarantine", check=False)
        assert taken.returncode == 1 and f"QUARANTINED {digest}".encode() in taken.stdout
        held = store.json("gate", "quarantine", "--dataset", "lung")["quarantined"]
        assert [h["digest"] for h in held] == [digest] and "StudyDescription" in held[0]["reason"]
        # Not served, not listed, not counted, not mounted, not searched, not published.
        assert node.get(f"/v1/blobs/{digest}", token).status_code == 404
        assert digest not in {e["digest"] for e in store.ndjson("ls", "--dataset", "lung")}
        shown = store.json("dataset", "show", "lung")
        assert (shown["instances"], shown["subjects"], shown["quarantined"]) == (2, 2, 1)
        assert wait_until(lambda: count_files() == 2, 20, "the quarantined file to leave the mount")
        assert wait_until(lambda: subjects() == {"lung": 2}, 20, "search to count two subjects")
        published = store.json("dataset", "publish", "lung", "--node-id", "test-node")
        assert (published["added"], published["removed"]) == (0, 1)
        # gc keeps a quarantined blob: it waits for review.
        assert digest not in {d for d in store.json("gc", "--dry-run").get("unreferenced", [])}
        assert store.cat(digest) == paths[1].read_bytes()
        # A second rescan finds nothing left to refuse.
        assert store.run("gate", "rescan", "--dataset", "lung").returncode == 0

        store.run("gate", "release", "--dataset", "lung", digest)
        assert store.json("gate", "quarantine")["quarantined"] == []
        assert node.get(f"/v1/blobs/{digest}", token).status_code == 200
        assert store.json("dataset", "show", "lung")["instances"] == 3
        assert wait_until(lambda: count_files() == 3, 20, "the released file back in the mount")
    finally:
        mount.stop()
        node.stop()
    actions = [r[0] for r in store.index_sql(
        "SELECT action FROM audit WHERE action LIKE 'gate.%' OR action = 'dataset.deidentification' ORDER BY seq")]
    assert actions == ["dataset.deidentification", "gate.rescan", "dataset.deidentification", "gate.rescan",
                       "gate.quarantine", "gate.rescan", "gate.rescan", "gate.release"]


def test_erasing_a_subject_removes_its_quarantined_files(leaked):
    store, _, digest = leaked
    store.run("dataset", "set", "lung", "--deid-options", "retain-patient-characteristics")
    store.run("gate", "rescan", "--dataset", "lung", "--quarantine", check=False)
    assert len(store.json("gate", "quarantine")["quarantined"]) == 1
    store.run("dataset", "erase-subject", "lung", "SUBJ-0002")
    assert store.json("gate", "quarantine")["quarantined"] == []
    assert digest in store.json("gc")["unreferenced"]
