"""The EUCAIM federated search on the node (issue 12): queries shaped as samply Focus sends them
(its `omop` endpoint type POSTs the UI's AST re-serialised with floats; its `eucaim-api` type sends a
GET), answered over generated corpora and checked against counts computed here from pydicom's
reading of the files, with code tables written again from the EUCAIM catalogue
(samply/eucaim-frontend static/catalogues/catalogue-eucaim.json). Random ASTs (printed seed) go
against a brute-force evaluator."""
import json
import subprocess
import sys

import pydicom
import pytest
import requests

from basic_profile import GENERATED_OPTIONS, declare
from conftest import GATED, REPO, Store, seeded_rng
from node import Node

SECRET = "focus-shared-secret-0123456789"
SEX, AGE, DIAGNOSIS, MODALITY, BODY_PART, MANUFACTURER = (
    "SNOMEDCT263495000", "SNOMEDCT423493009", "SNOMEDCT439401001", "RID10311", "SNOMEDCT123037004", "C25392")
UNKNOWN = "SNOMEDCT261665006"
# Catalogue code -> the DICOM values it stands for (Cairn's reading, README "Federated search").
CODES = {
    SEX: {"SNOMEDCT248153007": {"M"}, "SNOMEDCT248152002": {"F"}, "SNOMEDCT74964007": {"O"}},
    MODALITY: {"RID10312": {"MR"}, "RID10321": {"CT"}, "RID10337": {"PT"}, "RID10334": {"NM"}},
    BODY_PART: {"SNOMEDCT76752008": {"BREAST"}, "SNOMEDCT71854001": {"COLON"}, "SNOMEDCT39607008": {"LUNG", "CHEST"},
                "SNOMEDCT12921003": {"PELVIS"}, "SNOMEDCT41216001": {"PROSTATE"}},
    DIAGNOSIS: {"SNOMEDCT363358000": {"lung"}, "SNOMEDCT254837009": {"breast"}, "SNOMEDCT399068003": {"prostate"},
                "SNOMEDCT363406005": {"colon"}},
}
MANUFACTURER_PREFIXES = {"C200140": ("SIEMENS",), "birnlex_12833": ("GE ", "GE_", "GENERAL ELECTRIC"),
                         "birnlex_3065": ("PHILIPS",), "birnlex_3067": ("TOSHIBA", "CANON")}
DATASETS = {"lung-ct": ("lung", 11), "breast-mr": ("breast", 12), "prostate": ("prostate", 13)}


def make_corpus(out, seed):
    subprocess.run([sys.executable, str(REPO / "Tools/gen/make_corpus.py"), str(out), "--ct", "30", "--mr", "4", "--dx", "1",
                    "--jpeg", "3", "--slices-per-series", "2", "--seed", str(seed)], check=True, capture_output=True)
    return sorted(p for p in out.iterdir() if p.suffix == ".dcm")


@pytest.fixture(scope="module")
def searchable(tmp_path_factory):
    root = tmp_path_factory.mktemp("search")
    store = Store(root / "data")
    store.run("init", "--node-id", "provider-a")
    instances = []
    for dataset, (cancer, seed) in DATASETS.items():
        store.run("dataset", "create", *GATED, dataset, "--cancer-type", cancer, "--searchable", "--title", dataset.upper())
        files = make_corpus(root / dataset, seed)
        store.run("ingest", "--dataset", dataset, str(root / dataset))
        for path in files:
            ds = pydicom.dcmread(path, stop_before_pixels=True)
            age = str(ds.get("PatientAge", ""))
            instances.append({"dataset": dataset, "cancer": cancer, "subject": ds.PatientID, "study": ds.StudyInstanceUID,
                              "sex": ds.get("PatientSex"), "modality": ds.get("Modality"),
                              "body_part": ds.get("BodyPartExamined"), "manufacturer": ds.get("Manufacturer"),
                              "age": int(age[:3]) if age.endswith("Y") else None})
    # A dataset that is not searchable: never counted.
    store.run("dataset", "create", *GATED, "hidden", "--cancer-type", "lung")
    make_corpus(root / "hidden", 14)
    store.run("ingest", "--dataset", "hidden", str(root / "hidden"))
    node = Node(store, node_id="provider-a", config={"search_secret": SECRET, "min_count": 1})
    try:
        yield node, instances
    finally:
        node.stop()


def matches(condition, instance):
    key, kind, value = condition["key"], condition["type"], condition["value"]
    if key == AGE:
        age = instance["age"]
        if age is None:
            return False
        if kind == "BETWEEN":
            high = float("inf") if value["max"] == 0 and value["min"] > 0 else value["max"]
            return value["min"] <= age <= high
        if kind == "LOWER_THAN":
            return age < (value["max"] if isinstance(value, dict) else value)
        if kind == "GREATER_THAN":
            return age > (value["min"] if isinstance(value, dict) else value)
        return (int(age) == int(value)) if kind == "EQUALS" else (int(age) != int(value))
    have = {SEX: instance["sex"], MODALITY: instance["modality"], BODY_PART: instance["body_part"],
            MANUFACTURER: instance["manufacturer"], DIAGNOSIS: instance["cancer"]}.get(key)
    if key not in (SEX, MODALITY, BODY_PART, MANUFACTURER, DIAGNOSIS):
        return False

    def is_code(code):
        if code == UNKNOWN:
            return not have
        if not have:
            return False
        if key == MANUFACTURER:
            return code in MANUFACTURER_PREFIXES and have.upper().startswith(MANUFACTURER_PREFIXES[code])
        wanted = CODES[key].get(code)
        return wanted is not None and (have.upper() in {w.upper() for w in wanted})

    if kind in ("EQUALS", "CONTAINS"):
        return is_code(value)
    if kind == "NOT_EQUALS":
        known = value == UNKNOWN or value in CODES.get(key, MANUFACTURER_PREFIXES) or value in MANUFACTURER_PREFIXES
        return known and (not is_code(value)) and (bool(have) or value == UNKNOWN)
    if kind == "IN":
        return any(is_code(code) for code in value)
    raise AssertionError(kind)


def evaluate(node, instance):
    if "operand" in node:
        results = [evaluate(child, instance) for child in node["children"]]
        if not results:
            return True
        return all(results) if node["operand"] == "AND" else any(results)
    return matches(node, instance)


def expected(ast, instances):
    out = {}
    for instance in instances:
        if evaluate(ast, instance):
            row = out.setdefault(instance["dataset"], (set(), set()))
            row[0].add(instance["subject"])
            row[1].add(instance["study"])
    return {dataset: (len(subjects), len(studies)) for dataset, (subjects, studies) in out.items()}


def ask(node, ast, auth=("Secret", SECRET)):
    # Focus's omop type: the AST re-serialised by serde, numbers as floats, pretty-printed.
    body = json.dumps({"ast": ast, "id": "q__search__q"}, indent=2)
    r = requests.post(node.url + "/eucaim/search", data=body,
                      headers={"Content-Type": "application/json", "Authorization": f"{auth[0]} {auth[1]}"}, timeout=30)
    assert r.status_code == 200, r.text
    return r.json()


def counts(answer):
    return {c["id"]: (c["subjects_count"], c["studies_count"]) for c in answer["collections"]}


def bar(*criteria):
    """The UI's shape: OR[AND[OR[leaves of one key]...]]."""
    return {"operand": "OR", "children": [{"operand": "AND", "children": [
        {"operand": "OR", "children": leaves} for leaves in criteria]}]}


def leaf(key, value, kind="EQUALS"):
    return {"key": key, "type": kind, "value": value}


FIXTURES = {
    "everything": {"operand": "OR", "children": []},
    "female": bar([leaf(SEX, "SNOMEDCT248152002")]),
    "male or female": bar([leaf(SEX, "SNOMEDCT248153007"), leaf(SEX, "SNOMEDCT248152002")]),
    "CT": bar([leaf(MODALITY, "RID10321")]),
    "MR": bar([leaf(MODALITY, "RID10312")]),
    "lung body part (chest)": bar([leaf(BODY_PART, "SNOMEDCT39607008")]),
    "breast body part": bar([leaf(BODY_PART, "SNOMEDCT76752008")]),
    "Siemens": bar([leaf(MANUFACTURER, "C200140")]),
    "GE or Philips": bar([leaf(MANUFACTURER, "birnlex_12833"), leaf(MANUFACTURER, "birnlex_3065")]),
    "Toshiba (and Canon)": bar([leaf(MANUFACTURER, "birnlex_3067")]),
    "lung cancer": bar([leaf(DIAGNOSIS, "SNOMEDCT363358000")]),
    "female, breast cancer, MR, 40-70": bar([leaf(SEX, "SNOMEDCT248152002")], [leaf(DIAGNOSIS, "SNOMEDCT254837009")],
                                           [leaf(MODALITY, "RID10312")], [leaf(AGE, {"min": 40.0, "max": 70.0}, "BETWEEN")]),
    "at least 60 (max 0)": bar([leaf(AGE, {"min": 60.0, "max": 0.0}, "BETWEEN")]),
    "younger than 45": bar([leaf(AGE, 45.0, "LOWER_THAN")]),
    "not CT": bar([leaf(MODALITY, "RID10321", "NOT_EQUALS")]),
    "modality IN CT, MR": bar([leaf(MODALITY, ["RID10321", "RID10312"], "IN")]),
    "two bars (OR of ANDs)": {"operand": "OR", "children": [
        {"operand": "AND", "children": [{"operand": "OR", "children": [leaf(MODALITY, "RID10312")]}]},
        {"operand": "AND", "children": [{"operand": "OR", "children": [leaf(SEX, "SNOMEDCT248153007")]},
                                        {"operand": "OR", "children": [leaf(DIAGNOSIS, "SNOMEDCT399068003")]}]}]},
}


@pytest.mark.parametrize("name", sorted(FIXTURES))
def test_fixture_queries_match_pydicom(searchable, name):
    node, instances = searchable
    ast = FIXTURES[name]
    answer = ask(node, ast)
    assert counts(answer) == expected(ast, instances), name
    assert "hidden" not in counts(answer)
    assert answer["total"] == {"subjects_count": sum(s for s, _ in counts(answer).values()),
                               "studies_count": sum(t for _, t in counts(answer).values())}


def test_everything_describes_each_dataset(searchable):
    node, instances = searchable
    answer = ask(node, FIXTURES["everything"])
    for row in answer["collections"]:
        mine = [i for i in instances if i["dataset"] == row["id"]]
        assert row["name"] == row["id"].upper()
        assert row["age_range"] == {"min": min(i["age"] for i in mine), "max": max(i["age"] for i in mine)}
        assert set(row["modalities"]) == {i["modality"] for i in mine}
        assert set(row["body_parts"]) == {i["body_part"] for i in mine}
        assert set(row["gender"]) == {{"M": "male", "F": "female"}[i["sex"]] for i in mine}


def test_the_get_form_as_focus_eucaim_api_sends_it(searchable):
    node, instances = searchable
    r = requests.get(node.url + "/eucaim/search?gender=female&diagnosis=SNOMEDCT363358000&modality=CT",
                     headers={"Authorization": "Secret " + SECRET}, timeout=30)
    assert r.status_code == 200, r.text
    ast = bar([leaf(SEX, "SNOMEDCT248152002")], [leaf(DIAGNOSIS, "SNOMEDCT363358000")], [leaf(MODALITY, "RID10321")])
    assert counts(r.json()) == expected(ast, instances)
    r = requests.get(node.url + "/eucaim/search?manufacturer=General%20Electric&bodyPart=breast",
                     headers={"Authorization": "Secret " + SECRET}, timeout=30)
    ast = bar([leaf(MANUFACTURER, "birnlex_12833")], [leaf(BODY_PART, "SNOMEDCT76752008")])
    assert counts(r.json()) == expected(ast, instances)


def test_unknown_keys_and_codes_are_false_and_listed(searchable):
    node, instances = searchable
    answer = ask(node, bar([leaf("SNOMEDCT432213005", {"min": 2000.0, "max": 2020.0}, "BETWEEN")]))
    assert answer["collections"] == [] and answer["ignored"][0]["key"] == "SNOMEDCT432213005"
    answer = ask(node, bar([leaf(MODALITY, "RID99999"), leaf(MODALITY, "RID10312")]))
    assert counts(answer) == expected(bar([leaf(MODALITY, "RID10312")]), instances)
    assert "RID99999" in answer["ignored"][0]["reason"]


def random_ast(rng, depth=0):
    if depth >= 3 or rng.random() < 0.35:
        key = rng.choice([SEX, MODALITY, BODY_PART, MANUFACTURER, DIAGNOSIS, AGE, "SNOMEDCT432213005"])
        if key == AGE:
            kind = rng.choice(["BETWEEN", "LOWER_THAN", "GREATER_THAN", "EQUALS", "NOT_EQUALS"])
            low = float(rng.randrange(25, 95))
            value = {"min": low, "max": rng.choice([0.0, low + rng.randrange(0, 30)])} if kind == "BETWEEN" else low
            return leaf(key, value, kind)
        if key == "SNOMEDCT432213005":
            return leaf(key, {"min": 2000.0, "max": 2024.0}, "BETWEEN")
        codes = list(MANUFACTURER_PREFIXES) if key == MANUFACTURER else list(CODES[key])
        codes += [UNKNOWN, "BOGUS-CODE"]
        kind = rng.choice(["EQUALS", "NOT_EQUALS", "IN", "CONTAINS"])
        if kind == "IN":
            return leaf(key, rng.sample(codes, rng.randrange(1, 4)), kind)
        return leaf(key, rng.choice(codes), kind)
    return {"operand": rng.choice(["AND", "OR"]), "children": [random_ast(rng, depth + 1) for _ in range(rng.randrange(0, 4))]}


def test_random_asts_match_a_brute_force_evaluator(searchable):
    node, instances = searchable
    rng = seeded_rng("random ASTs")
    for n in range(150):
        ast = random_ast(rng)
        assert counts(ask(node, ast)) == expected(ast, instances), f"query {n}: {json.dumps(ast)}"


def test_auth_is_deny_by_default(searchable, tmp_path):
    node, _ = searchable
    url = node.url + "/eucaim/search"
    body = json.dumps({"ast": FIXTURES["female"], "id": "x"})
    assert requests.post(url, data=body, timeout=10).status_code == 401
    assert requests.post(url, data=body, headers={"Authorization": "Secret wrong-secret-xxxxxxxxxx"}, timeout=10).status_code == 401
    reader = node.token(datasets="lung-ct", scope="read")
    assert requests.post(url, data=body, headers=node.headers(reader), timeout=10).status_code == 403
    searcher = node.store.json("token", "issue", "--subject", "portal", "--scope", "search", "--ttl", "1h")
    assert requests.post(url, data=body, headers=node.headers(searcher), timeout=10).status_code == 200
    assert requests.post(url, data=body, headers={"Authorization": "Secret " + SECRET}, timeout=10).status_code == 200
    from conftest import wait_until

    def searchers():
        audit = node.store.ndjson("audit", "export")
        actors = {r["actor"] for r in audit if r["action"] == "search"}
        return audit if {"portal", "focus (search_secret)"} <= actors else None
    # Audit records are written in batches: poll until this one is.
    audit = wait_until(searchers, timeout=10, what="both searchers in the audit log")
    assert SECRET not in json.dumps(audit)
    assert SECRET not in node.log_path.read_text(errors="replace")


@pytest.mark.parametrize("body, fragment", [
    (b"{not json", "not JSON"),
    (b'{"ast": {"operand": "XOR", "children": []}}', "operand"),
    (b'{"ast": {"operand": "AND", "children": [{"key": "RID10311", "type": "LIKE", "value": "RID10321"}]}}', "type"),
    (b'{"ast": {"operand": "AND", "children": [{"key": "RID10311", "type": "EQUALS", "value": {"a": 1}}]}}', "value"),
    (b'{"ast": {"operand": "AND", "children": [{"key": "RID10311", "type": "BETWEEN", "value": {"min": 1, "max": 2}}]}}',
     "does not apply"),
    (b'{"ast": {"operand": "AND", "children": [{"key": "SNOMEDCT423493009", "type": "EQUALS", "value": "old"}]}}', "age"),
    (b'{"ast": {"operand": "AND", "children": [{"key": "RID10311", "type": "IN", "value": "RID10321"}]}}', "list"),
    (json.dumps({"ast": {"operand": "AND", "children": [leaf(MODALITY, ["RID10321"] * 300, "IN")]}}).encode(), "values"),
    (b'{"ast": ' + b'{"operand": "AND", "children": [' * 40 + b']}' * 40 + b'}', "nested"),
    (b'{"ast": {"operand": "OR", "children": []}, "pad": "' + b"x" * 70_000 + b'"}', "over"),
    (b'[1, 2]', "object"),
])
def test_hostile_queries_get_a_422_naming_the_problem(searchable, body, fragment):
    node, _ = searchable
    r = requests.post(node.url + "/eucaim/search", data=body, headers={"Authorization": "Secret " + SECRET}, timeout=30)
    assert r.status_code == 422, (r.status_code, r.text[:300])
    assert r.json()["error"] == "bad_query" and fragment.lower() in r.json()["detail"].lower(), r.json()
    assert node.alive()


def test_small_counts_are_withheld_and_the_view_follows_the_index(tmp_path):
    store = Store(tmp_path / "data")
    store.run("init", "--node-id", "small")
    store.run("dataset", "create", *GATED, "ds", "--cancer-type", "lung", "--searchable")
    files = make_corpus(tmp_path / "first", 21)
    store.run("ingest", "--dataset", "ds", str(tmp_path / "first"))
    subjects = {pydicom.dcmread(p, stop_before_pixels=True).PatientID for p in files}
    node = Node(store, node_id="small", config={"search_secret": SECRET})  # min_count 5 by default
    try:
        answer = ask(node, FIXTURES["everything"])
        row = answer["collections"][0]
        assert len(subjects) >= 5 and row["subjects_count"] == len(subjects)
        # One MR subject: below min_count, the row is left out exactly as an empty one is.
        few = ask(node, bar([leaf(MODALITY, "RID10312")]))
        assert few["collections"] == [] and few["total"] == {"subjects_count": 0, "studies_count": 0}
        # Ingested while serving: counted at the next query.
        more = make_corpus(tmp_path / "more", 22)
        store.run("ingest", "--dataset", "ds", str(tmp_path / "more"))
        added = {pydicom.dcmread(p, stop_before_pixels=True).PatientID for p in more}
        assert ask(node, FIXTURES["everything"])["collections"][0]["subjects_count"] == len(subjects | added)
        # Erased: gone from the next answer. Not searchable: gone altogether.
        store.run("dataset", "erase-subject", "ds", sorted(subjects)[0])
        assert ask(node, FIXTURES["everything"])["collections"][0]["subjects_count"] == len(subjects | added) - 1
        store.run("dataset", "set", "ds", "--searchable", "no")
        assert ask(node, FIXTURES["everything"])["collections"] == []
    finally:
        node.stop()


def test_the_hub_answers_the_same_queries_over_replicated_entries(tmp_path):
    """Three nodes publish to a hub; the hub's /eucaim/search counts over every node's published
    entries, per (node, dataset), and agrees with pydicom for every fixture query that asks no age
    (entries carry none: an age condition is false there and listed as not evaluable)."""
    from test_federation import Hub, free_port
    from conftest import wait_until
    hub = Hub(tmp_path / "hub", free_port())
    hub.stop()
    hub.configure(1, search_secret=SECRET)
    hub.start()
    nodes, instances = [], []
    try:
        for name, (dataset, (cancer, seed)) in zip(["node-a", "node-b", "node-c"], DATASETS.items()):
            store = Store(tmp_path / name / "data")
            (tmp_path / name).mkdir(exist_ok=True)
            store.run("init", "--node-id", name)
            # node-c keeps its dataset out of federated search: the hub must not count it.
            searchable = ["--searchable"] if name != "node-c" else []
            store.run("dataset", "create", *GATED, dataset, "--cancer-type", cancer, "--title", dataset.upper(), *searchable)
            files = make_corpus(tmp_path / f"{name}-corpus", seed)
            store.run("ingest", "--dataset", dataset, str(tmp_path / f"{name}-corpus"))
            for path in files if searchable else []:
                ds = pydicom.dcmread(path, stop_before_pixels=True)
                instances.append({"dataset": dataset, "cancer": cancer, "subject": ds.PatientID, "study": ds.StudyInstanceUID,
                                  "sex": ds.get("PatientSex"), "modality": ds.get("Modality"),
                                  "body_part": ds.get("BodyPartExamined"), "manufacturer": ds.get("Manufacturer"), "age": None})
            published = store.json("dataset", "publish", dataset)
            hub.cli("enroll", name, store.run("key", "show").stdout.decode().strip())
            node = Node(store, node_id=name, extra=("--hub", hub.url))
            nodes.append(node)
            wait_until(lambda: (hub.head(name, dataset) or {}).get("digest") == published["digest"], timeout=20, what=name)
        for label, ast in FIXTURES.items():
            if "AGE" in json.dumps(ast) or AGE in json.dumps(ast):
                continue
            r = requests.post(hub.url + "/eucaim/search", data=json.dumps({"ast": ast, "id": label}),
                              headers={"Authorization": "Secret " + SECRET}, timeout=30)
            assert r.status_code == 200, r.text
            assert counts(r.json()) == expected(ast, instances), label
            assert {c["node"] for c in r.json()["collections"]} <= {"node-a", "node-b"}
        aged = requests.post(hub.url + "/eucaim/search", data=json.dumps({"ast": FIXTURES["younger than 45"]}),
                             headers={"Authorization": "Secret " + SECRET}, timeout=30).json()
        assert aged["collections"] == [] and "no ages" in aged["ignored"][0]["reason"]
        r = requests.get(hub.url + "/eucaim/search?modality=CT", headers={"Authorization": "Secret " + SECRET}, timeout=30)
        assert counts(r.json()) == expected(bar([leaf(MODALITY, "RID10321")]), instances)
        token = hub.cli("grant", "--subject", "focus-hub", "--scope", "search", "--ttl", "1h")
        assert requests.get(hub.url + "/eucaim/search?modality=CT", headers={"Authorization": "Bearer " + token},
                            timeout=30).status_code == 200
        assert requests.get(hub.url + "/eucaim/search?modality=CT", headers={"Authorization": hub.catalog.headers["Authorization"]},
                            timeout=30).status_code == 403
        assert requests.get(hub.url + "/eucaim/search?modality=CT", timeout=30).status_code == 401
        bad = requests.post(hub.url + "/eucaim/search", data=b'{"ast": {"operand": "NAND", "children": []}}',
                            headers={"Authorization": "Secret " + SECRET}, timeout=30)
        assert bad.status_code == 422 and "operand" in bad.json()["detail"]
    finally:
        for node in nodes:
            node.stop()
        hub.stop()


def test_what_could_single_out_a_person_is_not_said(tmp_path):
    """Five men aged 40-44 and one woman of 91 (min_count 5): a query padded so that the row is
    shown (men OR older than 90) neither lists 'female' nor gives any age range (each end would
    have fewer than five people behind it); asking for the woman alone, or for nobody, answers the
    same (no row)."""
    sys.path.insert(0, str(REPO / "Tools" / "gen"))
    from make_identifiable import encode, identifiable_dataset
    folder = tmp_path / "cohort"
    folder.mkdir()
    people = [(f"M{n}", "M", 40 + n) for n in range(5)] + [("W1", "F", 91)]
    for n, (subject, sex, age) in enumerate(people):
        ds = identifiable_dataset()
        del ds.PatientName
        del ds.PatientBirthDate
        declare(ds, GENERATED_OPTIONS)
        ds.PatientID, ds.PatientSex, ds.PatientAge = subject, sex, f"{age:03d}Y"
        ds.StudyInstanceUID = f"1.2.826.0.1.3680043.8.498.5{n}"
        ds.SeriesInstanceUID = f"1.2.826.0.1.3680043.8.498.6{n}"
        ds.SOPInstanceUID = ds.file_meta.MediaStorageSOPInstanceUID = f"1.2.826.0.1.3680043.8.498.7{n}"
        (folder / f"{subject}.dcm").write_bytes(encode(ds))
    store = Store(tmp_path / "data")
    store.run("init", "--node-id", "small")
    store.run("dataset", "create", *GATED, "cohort", "--searchable")
    store.run("ingest", "--dataset", "cohort", str(folder))
    node = Node(store, node_id="small", config={"search_secret": SECRET, "min_count": 5})
    try:
        padded = ask(node, bar([leaf(SEX, "SNOMEDCT248153007"), leaf(AGE, 90.0, "GREATER_THAN")]))
        row = padded["collections"][0]
        assert row["subjects_count"] == 6 and row["gender"] == ["male"], row
        # Six people, min_count 5: any range would have an end with fewer than five people behind it.
        assert "age_range" not in row, row
        for age in (91.0, 92.0):
            alone = ask(node, bar([leaf(SEX, "SNOMEDCT248152002")], [leaf(AGE, age)]))
            assert alone["collections"] == [] and alone["total"] == {"subjects_count": 0, "studies_count": 0}
    finally:
        node.stop()
