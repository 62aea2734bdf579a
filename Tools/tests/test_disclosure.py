"""Nothing small leaves (issue 23): the hub's catalogue, filters, DCAT and count queries and the
node's search go through one disclosure rule; every released number counts people (at least
min_count of them), withheld keys are left out, and what a snapshot says of itself is recomputed
from its entries. Each finding of the hostile probe is a test here."""
import hashlib
import itertools

import pytest
import requests
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from conftest import GATED, Store, seeded_rng, wait_until
from manifest_reference import b64url_encode, canonical, entries_root, push_headers
from node import Node
from test_basic_profile import base_instance, save
from test_federation import Hub, free_port


def entry(i, subject, study, modality, sex, body_part="BREAST", manufacturer="ACME"):
    return {"digest": "sha256:" + hashlib.sha256(f"{subject}-{i}".encode()).hexdigest(), "size": 1000 + i,
            "subject": subject, "study_uid": study, "modality": modality,
            "sex": sex, "body_part": body_part, "manufacturer": manufacturer}


class Pusher:
    """A node enrolled at the hub that pushes snapshots it signs itself (any summary it likes)."""

    def __init__(self, hub, node="probe"):
        self.hub, self.node, self.key = hub, node, Ed25519PrivateKey.generate()
        hub.cli("enroll", node, b64url_encode(self.key.public_key().public_bytes_raw()))

    def push(self, dataset, entries, summary=None, metadata=None):
        entries = sorted(entries, key=lambda e: e["digest"])
        doc = {"type": "cairn.snapshot/v1", "node": self.node, "dataset": dataset, "seq": 1, "parent": None,
               "metadata": metadata or {"title": dataset, "cancer_type": "breast"}, "added": entries, "removed": [],
               "entries": len(entries), "entries_root": entries_root(entries), "summary": summary or {},
               "created_at": "2026-12-01T00:00:00Z"}
        doc["signature"] = {"alg": "EdDSA", "kid": "k", "sig": b64url_encode(self.key.sign(canonical(doc)))}
        body = canonical(doc)
        digest = "sha256:" + hashlib.sha256(body).hexdigest()
        return requests.put(f"{self.hub.url}/v1/nodes/{self.node}/datasets/{requests.utils.quote(dataset, safe='')}"
                            f"/snapshots/{digest}", data=body, headers=push_headers(self.key, self.node, dataset, digest, body),
                            timeout=30)


@pytest.fixture
def hub(tmp_path):
    h = Hub(tmp_path / "hub", free_port(), min_count=5)
    yield h
    h.stop()


def catalog(hub, **params):
    r = hub.catalog.get(f"{hub.url}/v1/catalog/datasets", params=params, timeout=10)
    assert r.status_code == 200, r.text
    return {d["id"]: d for d in r.json()["datasets"]}


def test_one_patient_shows_nothing_but_that_it_is_withheld(hub):
    """The probe's dataset: one woman, one MR study of her breast, six images."""
    pusher = Pusher(hub)
    assert pusher.push("one", [entry(i, "S1", "1.2.1", "MR", "F") for i in range(6)]).status_code == 201
    shown = catalog(hub)["one"]
    assert shown["summary"] == {"suppressed": True} and "entries" not in shown
    detail = hub.catalog.get(f"{hub.url}/v1/catalog/datasets/one", timeout=10).json()["datasets"][0]
    assert detail["summary"] == {"suppressed": True} and "entries" not in detail
    for key, value in [("sex", "F"), ("modality", "MR"), ("body_part", "BREAST")]:
        assert catalog(hub, **{key: value}) == {}, key
    dcat = hub.catalog.get(f"{hub.url}/v1/catalog/datasets/one/dcat", timeout=10).json()
    assert dcat["cairn:modalities"] == [] and dcat["cairn:bodyParts"] == [] and dcat["dcat:keyword"] == []
    assert "healthdcatap:numberOfUniqueIndividuals" not in dcat and "healthdcatap:numberOfRecords" not in dcat
    counted = hub.catalog.post(f"{hub.url}/v1/catalog/count", json={"criteria": {"sex": ["F"]}}, timeout=10).json()
    assert counted["datasets"] == []


def test_breakdowns_count_people_and_leave_small_values_out(hub):
    """Six women with one CT image each and five men with MR images, one of them ten: by sex six
    women and five men (ten images of one man are one person). A dataset of six women and one
    person of another sex shows no sex at all: 'F: 6' beside 7 subjects would say that one person
    is not a woman."""
    pusher = Pusher(hub)
    entries = [entry(0, f"W{n}", f"1.2.{n}", "CT", "F") for n in range(6)]
    entries += [entry(i, "M1", "1.3.1", "MR", "M", body_part="HEAD") for i in range(10)]
    entries += [entry(0, f"M{n}", f"1.3.{n}", "MR", "M", body_part="HEAD") for n in range(2, 6)]
    assert pusher.push("mixed", entries).status_code == 201
    summary = catalog(hub)["mixed"]["summary"]
    assert summary["subjects"] == 11 and summary["studies"] == 11 and summary["instances"] == 20
    assert summary["by_sex"] == {"F": 6, "M": 5} and summary["by_modality"] == {"CT": 6, "MR": 5}
    assert summary["by_body_part"] == {"BREAST": 6, "HEAD": 5} and summary["by_manufacturer"] == {"ACME": 11}
    assert "series" not in summary and "bytes" not in summary
    assert set(catalog(hub, sex="M")) == {"mixed"} and set(catalog(hub, modality="MR")) == {"mixed"}
    dcat = hub.catalog.get(f"{hub.url}/v1/catalog/datasets/mixed/dcat", timeout=10).json()
    assert dcat["cairn:modalities"] == ["CT", "MR"] and dcat["cairn:bodyParts"] == ["BREAST", "HEAD"]
    lone = [entry(0, f"W{n}", f"1.4.{n}", "CT", "F") for n in range(6)] + [entry(0, "X1", "1.4.9", "CT", "O")]
    assert pusher.push("complement", lone).status_code == 201
    summary = catalog(hub)["complement"]["summary"]
    assert summary["subjects"] == 7 and summary["by_sex"] == {} and summary["by_modality"] == {"CT": 7}
    assert "complement" not in catalog(hub, sex="F")


def test_the_hub_recomputes_what_a_snapshot_says_of_itself(hub):
    pusher = Pusher(hub)
    lie = {"subjects": 999_999, "studies": 999_999, "instances": 999_999, "by_sex": {"F": 999_999}}
    entries = [entry(0, f"P{n}", f"1.4.{n}", "CT", "F") for n in range(7)]
    assert pusher.push("liar", entries, summary=lie).status_code == 201
    summary = catalog(hub)["liar"]["summary"]
    assert (summary["subjects"], summary["studies"], summary["instances"], summary["by_sex"]) == (7, 7, 7, {"F": 7})


@pytest.mark.parametrize("dataset", ["..", "<script>", "x" * 5000, "-rf", ".hidden", "a/b", "näme"])
def test_dataset_ids_the_node_forbids_are_refused(hub, dataset):
    r = Pusher(hub).push(dataset, [entry(0, "S", "1.2", "CT", "F")])
    # Refused whichever check meets it first: the id in the path (not the signed one, once the URL
    # is normalised), the URL's length, or the document's id.
    assert r.status_code in (400, 403, 404, 414, 422, 431), (r.status_code, r.text)
    assert catalog(hub) == {}


def test_a_seeded_random_search_reveals_no_group_under_min_count(hub):
    """Small synthetic datasets; every catalogue answer and count query, with every filter, is
    checked against the entries: each released count and value has min_count people behind it."""
    rng = seeded_rng("disclosure")
    pusher = Pusher(hub)
    truth = {}
    for d in range(6):
        entries = []
        for p in range(rng.randrange(1, 12)):
            sex, modality = rng.choice("FMO"), rng.choice(["CT", "MR", "PT"])
            for i in range(rng.randrange(1, 4)):
                entries.append(entry(i, f"D{d}P{p}", f"1.5.{d}.{p}", modality if i == 0 else rng.choice(["CT", "MR"]), sex,
                                     body_part=rng.choice(["CHEST", "HEAD"])))
        truth[f"d{d}"] = entries
        assert pusher.push(f"d{d}", entries).status_code == 201

    def people(entries, key=None, value=None):
        return len({e["subject"] for e in entries if key is None or e[key] == value})

    for key, value in [(None, None)] + list(itertools.product(["sex"], "FMO")) + list(
            itertools.product(["modality"], ["CT", "MR", "PT"])) + list(itertools.product(["body_part"], ["CHEST", "HEAD"])):
        shown = catalog(hub, **({key: value} if key else {}))
        for dataset, item in shown.items():
            entries = truth[dataset]
            if key:
                assert people(entries, key, value) >= 5, (key, value, dataset)
            summary = item["summary"]
            if summary.get("suppressed"):
                assert summary == {"suppressed": True} and people(entries) < 5
                continue
            assert summary["subjects"] == people(entries) >= 5
            for k in ("sex", "modality", "body_part", "manufacturer"):
                for v, n in summary[f"by_{k}"].items():
                    assert n == people(entries, k, v) >= 5, (dataset, k, v, n)
            # One sex per person: what the shown values leave over is no group of one to four.
            rest = summary["subjects"] - sum(summary["by_sex"].values())
            assert not 0 < rest < 5, (dataset, summary)
        criteria = {key: [value]} if key else {}
        counted = hub.catalog.post(f"{hub.url}/v1/catalog/count", json={"criteria": criteria}, timeout=10).json()
        for row in counted["datasets"]:
            assert row["subjects"] >= 5 and row["subjects"] == people(truth[row["id"]], key, value), row
            # Subtracted from the answer without the criterion, it isolates no group of one to four.
            assert not 0 < people(truth[row["id"]]) - row["subjects"] < 5, (key, value, row)


def test_a_count_cannot_be_subtracted_from_its_neighbour(hub):
    """The second probe's finding: {} answered 21 and {sex: M} 20, so one woman. Either answer may
    go out, not both: the narrower one is withheld, and "M or F" beside "M" too."""
    pusher = Pusher(hub)
    people = [entry(0, f"P{p}", f"1.6.{p}", "MR", "F" if p == 0 else "M") for p in range(21)]
    assert pusher.push("twentyone", people).status_code == 201

    def count(criteria):
        answer = hub.catalog.post(f"{hub.url}/v1/catalog/count", json={"criteria": criteria}, timeout=10).json()
        return {d["id"]: d["subjects"] for d in answer["datasets"]}.get("twentyone")
    assert count({}) == 21 and count({"modality": ["MR"]}) == 21
    assert count({"sex": ["M"]}) is None and count({"sex": ["F"]}) is None and count({"sex": ["M", "F"]}) is None
    assert count({"sex": ["M"], "modality": ["MR"]}) is None


def test_node_search_never_shows_an_extreme_age_of_a_small_group(tmp_path):
    """Five patients aged 23, 31, 44, 58 and 97 (min_count 5): no age range; nine: both ends are
    the median."""
    store = Store(tmp_path / "data")
    store.run("init", "--node-id", "ages")
    store.run("dataset", "create", *GATED, "cohort", "--searchable", "--cancer-type", "breast")
    folder = tmp_path / "cohort"
    folder.mkdir()
    from basic_profile import GENERATED_OPTIONS, declare
    ages = [23, 31, 44, 58, 97, 60, 61, 62, 63]
    for n, age in enumerate(ages):
        ds = base_instance(subject=f"AGE-{n:04d}")
        ds.PatientSex, ds.PatientAge = "F", f"{age:03d}Y"
        declare(ds, GENERATED_OPTIONS)
        save(ds, folder / f"{n}.dcm")
    paths = sorted(folder.iterdir(), key=lambda p: int(p.stem))
    store.run("ingest", "--dataset", "cohort", *map(str, paths[:5]))
    secret = "disclosure-test-secret-0123"
    node = Node(store, node_id="ages", config={"search_secret": secret, "min_count": 5})
    ask = lambda: requests.post(f"{node.url}/eucaim/search", json={"ast": {"operand": "OR", "children": []}, "id": "q"},
                                headers={"Authorization": f"Secret {secret}"}, timeout=30).json()["collections"]
    try:
        [row] = ask()
        assert row["subjects_count"] == 5 and "age_range" not in row, row
    finally:
        node.stop()
    store.run("ingest", "--dataset", "cohort", *map(str, paths[5:]))
    node = Node(store, node_id="ages", config={"search_secret": secret, "min_count": 5})
    try:
        [row] = ask()
        assert row["subjects_count"] == 9 and row["age_range"] == {"min": 60, "max": 60}, row
    finally:
        node.stop()


def test_an_upload_does_not_say_what_another_dataset_holds(tmp_path):
    store = Store(tmp_path / "data")
    store.run("init")
    store.run("dataset", "create", "a", "--no-text-review")
    store.run("dataset", "create", "b", "--no-text-review")
    path = save(base_instance(subject="SUBJ-0042"), tmp_path / "shared.dcm")
    store.run("ingest", "--dataset", "b", str(path))
    node = Node(store)
    try:
        headers = node.headers(node.token(datasets="a", scope="ingest"))
        first = requests.post(f"{node.url}/v1/datasets/a/instances", data=path.read_bytes(), headers=headers, timeout=30)
        assert first.status_code == 201 and first.json()["deduplicated"] is False, first.text
        again = requests.post(f"{node.url}/v1/datasets/a/instances", data=path.read_bytes(), headers=headers, timeout=30)
        assert again.status_code == 201 and again.json()["deduplicated"] is True
    finally:
        node.stop()


def test_anonymous_callers_learn_ready_or_not_and_no_metrics(tmp_path):
    store = Store(tmp_path / "data")
    store.run("init")
    node = Node(store)
    try:
        assert requests.get(node.url + "/metrics", timeout=10).status_code == 401
        assert node.get("/metrics", node.token(datasets="default")).status_code == 401  # a read token is not a monitor's
        assert node.get("/metrics", node.monitor).status_code == 200
        assert requests.get(node.url + "/readyz", timeout=10).json() == {"status": "ready"}
        assert "disk_free_bytes" in node.ready().json()
    finally:
        node.stop()


def test_names_and_identifiers_from_outside_cannot_forge_output_or_paths(tmp_path):
    store = Store(tmp_path / "data")
    store.run("init")
    store.run("dataset", "create", "open", "--deid-policy", "accept")
    node = Node(store)
    try:
        headers = node.headers(node.token(datasets="open", scope="ingest"))
        forged = "x\nsha256:forged\t1\t1\tzstd\tok\x1b[31mred\x1b[0m"
        r = requests.post(f"{node.url}/v1/datasets/open/instances", params={"name": forged}, data=b"plain bytes",
                          headers=headers, timeout=30)
        assert r.status_code == 201, r.text
    finally:
        node.stop()
    listing = store.run("ls", "--dataset", "open").stdout.decode()
    assert len(listing.splitlines()) == 1 and "\x1b" not in listing and "sha256:forged\t" not in listing, listing
    assert "\\u{a}" in listing and "\\u{1b}" in listing
    # Ingest refuses UIDs that are not UIDs and a NUL inside a Patient ID, in any dataset.
    bad = {"dots": ("StudyInstanceUID", ".."), "path": ("SeriesInstanceUID", "1.2.3.4/../.."), "nul": ("PatientID", "x\0y")}
    for label, (keyword, value) in bad.items():
        ds = base_instance()
        setattr(ds, keyword, value)
        path = save(ds, tmp_path / f"{label}.dcm")
        proc = store.run("ingest", "--dataset", "open", str(path), check=False)
        assert proc.returncode == 1 and b"refused" in proc.stderr, (label, proc.stderr)
    assert len(store.ndjson("ls", "--dataset", "open")) == 1


def test_dcat_names_datasets_by_the_configured_address_only(tmp_path):
    hub = Hub(tmp_path / "hub", free_port())
    try:
        pusher = Pusher(hub)
        assert pusher.push("lung", [entry(0, "S1", "1.2", "CT", "F")]).status_code == 201
        dcat = hub.catalog.get(f"{hub.url}/v1/catalog/datasets/lung/dcat", headers={"Host": "evil.example.org"},
                               timeout=10).json()
        assert dcat["@id"] == "/v1/catalog/datasets/lung" and "evil" not in str(dcat)
        hub.stop()
        hub.configure(1, public_url="https://hub.eucaim.example.org/")
        hub.start()
        dcat = hub.catalog.get(f"{hub.url}/v1/catalog/datasets/lung/dcat", headers={"Host": "evil.example.org"},
                               timeout=10).json()
        assert dcat["@id"] == "https://hub.eucaim.example.org/v1/catalog/datasets/lung"
    finally:
        hub.stop()


@pytest.mark.local_files
def test_a_missing_or_damaged_first_blob_is_a_500_before_any_header(tmp_path):
    """WADO-RS answered 200 with a Content-Length and then 136 bytes when the blob file was gone;
    a whole GET of a blob damaged in its first frame was a 200 cut short. Both are 500s now."""
    import os
    from dicom_gen import write_ct_study
    store = Store(tmp_path / "data")
    store.run("init")
    store.run("dataset", "create", "ct", "--deid-policy", "accept")
    (tmp_path / "study").mkdir()
    series = write_ct_study(tmp_path / "study", "SUBJ-CUT", series_count=1, slices=2)
    store.run("ingest", "--dataset", "ct", str(tmp_path / "study"))
    listed = {e["dicom"]["sop_uid"]: e for e in store.ndjson("ls", "--dataset", "ct")}
    (series_uid, paths), = series.items()
    import pydicom
    first, second = (pydicom.dcmread(p, stop_before_pixels=True) for p in paths)
    node = Node(store)
    try:
        token = node.token("ct")
        gone = listed[first.SOPInstanceUID]["digest"]
        os.unlink(store.path(gone))
        url = f"/dicomweb/ct/studies/{first.StudyInstanceUID}/series/{series_uid}/instances/{first.SOPInstanceUID}"
        r = node.get(url, token, headers={"Accept": 'multipart/related; type="application/dicom"'})
        assert r.status_code == 500 and r.json()["error"] == "blob_unavailable", (r.status_code, r.headers)
        damaged = listed[second.SOPInstanceUID]["digest"]
        path = store.path(damaged)
        blob = bytearray(open(path, "rb").read())
        blob[40] ^= 0xFF  # inside the first frame
        os.chmod(path, 0o644)
        with open(path, "wb") as f:
            f.write(blob)
        r = node.get(f"/v1/blobs/{damaged}", token, headers={"Accept-Encoding": "identity"})
        assert r.status_code == 500 and r.json()["error"] == "blob_unavailable", (r.status_code, r.headers)
        # The audit trail is written in batches: poll until both refusals are in it.
        wait_until(lambda: {e.get("digest") for e in store.ndjson("audit", "export") if e.get("status") == 500} >= {gone, damaged},
                   timeout=10, what="both 500s in the audit trail")
        assert node.alive()
    finally:
        node.stop()
