"""The gate verifies what a file says about itself (issue 22): every attribute of PS3.15 Table E.1-1
is judged by its action under the options the file declares and the dataset accepts, whatever the
file declares about itself. Files are written by pydicom (an encoder independent of Cairn's) and
judged by `cairn gate check`, by ingest and by uploads."""
import json
import subprocess
from pathlib import Path

import pydicom
import pytest
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.sequence import Sequence
from pydicom.uid import (
    CTImageStorage,
    DeflatedExplicitVRLittleEndian,
    ExplicitVRBigEndian,
    ExplicitVRLittleEndian,
    ImplicitVRLittleEndian,
    generate_uid,
)

from basic_profile import OPTIONS, declare, planted_element, table
from conftest import Store, cairn_binary
from node import Node

SYNTAXES = {"implicit": ImplicitVRLittleEndian, "explicit": ExplicitVRLittleEndian, "big": ExplicitVRBigEndian,
            "deflate": DeflatedExplicitVRLittleEndian}
# A sequence the table keeps (no row): a planted attribute inside its item must be found there.
CARRIER = 0x00081115  # Referenced Series Sequence


def base_instance(subject="SUBJ-0001", syntax=ExplicitVRLittleEndian) -> Dataset:
    meta = FileMetaDataset()
    meta.MediaStorageSOPClassUID = CTImageStorage
    meta.MediaStorageSOPInstanceUID = generate_uid()
    meta.TransferSyntaxUID = syntax
    ds = Dataset()
    ds.file_meta = meta
    ds.SOPClassUID, ds.SOPInstanceUID = CTImageStorage, meta.MediaStorageSOPInstanceUID
    ds.StudyInstanceUID, ds.SeriesInstanceUID = generate_uid(), generate_uid()
    ds.Modality, ds.PatientID = "CT", subject
    declare(ds)
    return ds


def save(ds: Dataset, path: Path) -> Path:
    syntax = ds.file_meta.TransferSyntaxUID
    ds.save_as(path, enforce_file_format=True, little_endian=syntax != ExplicitVRBigEndian,
               implicit_vr=syntax == ImplicitVRLittleEndian)
    return path


def gate_check(*args) -> dict:
    """The verdicts on the table's rules; kept text is reviewed in test_text_review.py."""
    review = () if "--dataset" in args else ("--no-text-review",)
    proc = subprocess.run([cairn_binary(), "gate", "check", "--json", *review, *map(str, args)], capture_output=True, timeout=600)
    assert proc.returncode in (0, 1), proc.stderr.decode()
    return {Path(r["path"]).name: r["reasons"] for r in json.loads(proc.stdout)["results"]}


def guarded_rows():
    """Every row whose basic action is X, Z or D, or that an option turns to C: the attributes a
    de-identified file may not carry a real value in unless an option keeps them."""
    out = []
    for key, (action, options) in sorted(table().items()):
        if key == "private":
            continue
        parts = set(action.split("/"))
        if parts & {"X", "Z", "D"} and not parts & {"U", "U*"} or "C" in options.values():
            out.append(key)
    return out


def tag_text(tag: int) -> str:
    return f"({tag >> 16:04X},{tag & 0xFFFF:04X})"


@pytest.mark.parametrize("syntax", SYNTAXES)
def test_a_value_planted_in_any_row_is_refused_naming_it(tmp_path, syntax):
    rows = guarded_rows()
    assert len(rows) > 550, f"the table has {len(rows)} guarded rows"
    expected = {}
    for key in rows:
        for place in ("top", "nested"):
            ds = base_instance(syntax=SYNTAXES[syntax])
            element = planted_element(key)
            if place == "top" and element.tag >> 16 == 0:
                continue  # command elements are not written in a file's data set, only inside items
            if place == "top":
                ds[element.tag] = element
            else:
                item = Dataset()
                item[element.tag] = element
                ds[CARRIER] = pydicom.DataElement(CARRIER, "SQ", Sequence([item]))
            name = f"{key}-{place}.dcm"
            save(ds, tmp_path / name)
            expected[name] = tag_text(element.tag)
    verdicts = gate_check(tmp_path)
    assert len(verdicts) == len(expected)
    stored = sorted(name for name, reasons in verdicts.items() if not reasons)
    assert not stored, f"{len(stored)} planted files pass the gate: {stored[:20]}"
    unnamed = sorted(name for name, reasons in verdicts.items() if not any(expected[name] in r for r in reasons))
    assert not unnamed, "refused without naming the planted attribute: " + "; ".join(
        f"{n}: {verdicts[n]}" for n in unnamed[:10])


def test_the_declaration_is_required_and_turns_nothing_off(tmp_path):
    undeclared = base_instance()
    del undeclared.PatientIdentityRemoved
    save(undeclared, tmp_path / "undeclared.dcm")
    named = base_instance()
    named.PatientName = "Doe^John"
    save(named, tmp_path / "declared-but-named.dcm")
    save(base_instance(), tmp_path / "clean.dcm")
    verdicts = gate_check(tmp_path)
    assert verdicts["clean.dcm"] == []
    assert any("(0012,0062) PatientIdentityRemoved" in r for r in verdicts["undeclared.dcm"])
    assert verdicts["declared-but-named.dcm"] == [
        "(0010,0010) PatientName: Z attribute holds a value that is not a pseudonym (the Patient ID, a marker such as "
        "ANONYMIZED, or the dataset's --pseudonym pattern)"]


def test_options_count_only_when_declared_and_accepted(tmp_path):
    def instance(declared):
        ds = base_instance()
        ds.PatientSex, ds.PatientAge, ds.StudyDate = "F", "045Y", "20240102"
        declare(ds, declared)
        return ds
    save(instance(["retain-patient-characteristics", "retain-longitudinal-modified-dates"]), tmp_path / "declares.dcm")
    save(instance([]), tmp_path / "silent.dcm")
    both = "retain-patient-characteristics,retain-longitudinal-modified-dates"
    accepted = gate_check("--deid-options", both, tmp_path)
    assert accepted["declares.dcm"] == []
    assert {r.split(":")[0] for r in accepted["silent.dcm"]} == {
        "(0008,0020) StudyDate", "(0010,0040) PatientSex", "(0010,1010) PatientAge"}
    strict = gate_check(tmp_path)
    assert strict["declares.dcm"] and all("which the dataset does not accept" in r for r in strict["declares.dcm"]), \
        strict["declares.dcm"]
    only_dates = gate_check("--deid-options", "retain-longitudinal-modified-dates", tmp_path)
    assert {r.split(":")[0] for r in only_dates["declares.dcm"]} == {"(0010,0040) PatientSex", "(0010,1010) PatientAge"}


HIDDEN_NAMES = {
    "marker-prefix": "ANON^Doe^John", "marker-lower": "anon^Doe^John", "marker-dash": "ANON-Doe^John",
    "marker-underscore": "ANON_JOHN_DOE", "removed-prefix": "REMOVED^Doe^John", "anonymized-words": "ANONYMIZED Doe John",
    "ideographic-group": "ANON^^^^=Yamada^Tarou=やまだ^たろう", "second-value": "ANONYMIZED\\Doe^John",
    "lower-plain": "doe^john",
}
HARMLESS_NAMES = {"marker": "ANONYMIZED", "caret": "^", "empty-groups": "ANON^^^^=^=", "pseudonym": "SUBJ-0001",
                  "marker-and-pseudonym": "ANON^SUBJ-0001"}


def test_names_behind_markers_and_in_every_encoding(tmp_path):
    for label, name in {**HIDDEN_NAMES, **HARMLESS_NAMES}.items():
        ds = base_instance()
        ds.SpecificCharacterSet = "ISO_IR 192"
        ds.PatientName = name
        save(ds, tmp_path / f"{label}.dcm")
    encoded = {  # (character set, raw Patient's Name bytes)
        "iso2022-ir87": ("\\ISO 2022 IR 87", "Yamada^Tarou=山田^太郎".encode("iso2022_jp")),
        "ir100": ("ISO_IR 100", "Müller^Jürgen".encode("latin-1")),
        "gb18030": ("GB18030", "王^小明".encode("gb18030")),
        "utf8": ("ISO_IR 192", "Øster^Åse".encode("utf-8")),
    }
    for label, (charset, raw) in encoded.items():
        ds = base_instance()
        ds.SpecificCharacterSet = charset
        ds.add_new(0x00100010, "PN", raw)
        save(ds, tmp_path / f"{label}.dcm")
    verdicts = gate_check(tmp_path)
    for label in [*HIDDEN_NAMES, *encoded]:
        assert any(r.startswith("(0010,0010) PatientName") for r in verdicts[f"{label}.dcm"]), (label, verdicts[f"{label}.dcm"])
    for label in HARMLESS_NAMES:
        assert verdicts[f"{label}.dcm"] == [], (label, verdicts[f"{label}.dcm"])


def test_attributes_tools_miss(tmp_path):
    """The classic misses of de-identification tools, each in a file that declares the removal."""
    def one(label, build):
        ds = base_instance()
        build(ds)
        save(ds, tmp_path / f"{label}.dcm")
    item = Dataset()
    item.PatientID, item.IssuerOfPatientID = "MRN-123456", "HOSPITAL"
    one("other-ids", lambda ds: setattr(ds, "OtherPatientIDsSequence", Sequence([item])))
    one("other-names", lambda ds: setattr(ds, "OtherPatientNames", "Doe^Jane"))
    one("address", lambda ds: setattr(ds, "PatientAddress", "1 Main Street, Springfield"))
    one("telephone", lambda ds: setattr(ds, "PatientTelephoneNumbers", "+44 20 7946 0000"))
    one("responsible", lambda ds: setattr(ds, "ResponsiblePerson", "Doe^Mary"))
    one("telecom", lambda ds: ds.add_new(0x00401104, "LT", "john.doe@example.org"))
    one("insurance", lambda ds: setattr(ds, "PatientInsurancePlanCodeSequence", Sequence([Dataset()])))
    one("country", lambda ds: setattr(ds, "CountryOfResidence", "Narnia"))
    one("institution-residence", lambda ds: setattr(ds, "PatientInstitutionResidence", "Ward 7"))
    one("accession", lambda ds: setattr(ds, "AccessionNumber", "A123456"))
    one("issuer", lambda ds: setattr(ds, "IssuerOfPatientID", "HOSPITAL"))
    one("operator", lambda ds: setattr(ds, "OperatorsName", "Smith^Anna"))
    one("physician", lambda ds: setattr(ds, "PerformingPhysicianName", "Jones^Bob"))
    # A person name deep in an SR content tree, three levels down.
    def sr(ds):
        leaf = Dataset()
        leaf.ValueType, leaf.PersonName = "PNAME", "Doe^John"
        middle = Dataset()
        middle.ValueType, middle.ContentSequence = "CONTAINER", Sequence([leaf])
        top = Dataset()
        top.ValueType, top.ContentSequence = "CONTAINER", Sequence([Dataset(), middle])
        ds.ContentSequence = Sequence([Dataset(), Dataset(), top])
    one("sr-person-name", sr)
    def sr_text(ds):
        leaf = Dataset()
        leaf.ValueType, leaf.TextValue = "TEXT", "Patient John Doe, born 1970"
        ds.ContentSequence = Sequence([leaf])
    one("sr-text", sr_text)
    # The same trees in files that declare Clean Structured Content: their items are judged row by row.
    one("sr-person-name-cleaned", lambda ds: (sr(ds), declare(ds, ["clean-structured-content"])))
    one("sr-text-cleaned", lambda ds: (sr_text(ds), declare(ds, ["clean-structured-content"])))
    # Private elements, explicit VR, holding a name and a birth date.
    def private(ds):
        block = ds.private_block(0x0009, "ACME 1.0", create=True)
        block.add_new(0x01, "LO", "Doe^John")
        block.add_new(0x02, "SH", "19700101")
    one("private", private)
    one("encapsulated-pdf", lambda ds: (ds.add_new(0x00420011, "OB", b"%PDF-1.4\n% Patient: John Doe\n"),
                                       setattr(ds, "MIMETypeOfEncapsulatedDocument", "application/pdf")))
    verdicts = gate_check(tmp_path)
    expectations = {
        "other-ids": "(0010,1002) OtherPatientIDsSequence", "other-names": "(0010,1001) OtherPatientNames",
        "address": "(0010,1040) PatientAddress", "telephone": "(0010,2154) PatientTelephoneNumbers",
        "responsible": "(0010,2297) ResponsiblePerson", "telecom": "(0040,1104)",
        "insurance": "(0010,0050)", "country": "(0010,2150) CountryOfResidence",
        "institution-residence": "(0038,0400) PatientInstitutionResidence", "accession": "(0008,0050) AccessionNumber",
        "issuer": "(0010,0021) IssuerOfPatientID", "operator": "(0008,1070) OperatorsName",
        "physician": "(0008,1050) PerformingPhysicianName",
        # A D sequence holds only what a tool replaced by a dummy: refused whole without the option.
        "sr-person-name": "(0040,A730) ContentSequence", "sr-text": "(0040,A730) ContentSequence",
        "private": "(0009,1001) private attribute",
        "encapsulated-pdf": "(0042,0011)",
    }
    for label, named in expectations.items():
        assert any(r.startswith(named) for r in verdicts[f"{label}.dcm"]), (label, verdicts[f"{label}.dcm"])
    assert any(r.startswith("(0009,1002)") for r in verdicts["private.dcm"])
    # With the options that keep them, the SR's free text and the document pass; the name never does,
    # three levels down; accepting an option the file does not declare keeps nothing.
    kept = gate_check("--deid-options", "clean-structured-content", "--allow-embedded-documents", tmp_path)
    assert kept["sr-person-name-cleaned.dcm"] == [
        "(0040,A730)[2]>(0040,A730)[1]>(0040,A730)[0]>(0040,A123) PersonName: D attribute holds a value that is not a "
        "pseudonym (the Patient ID, a marker such as ANONYMIZED, or the dataset's --pseudonym pattern)"]
    assert kept["sr-text-cleaned.dcm"] == [] and kept["sr-text.dcm"]
    assert kept["encapsulated-pdf.dcm"] == []


def test_burned_in_annotation_and_pixels(tmp_path):
    def image(modality, burned_in=None, declared=()):
        ds = base_instance()
        ds.Modality = modality
        ds.Rows = ds.Columns = 4
        ds.SamplesPerPixel, ds.PhotometricInterpretation = 1, "MONOCHROME2"
        ds.BitsAllocated, ds.BitsStored, ds.HighBit, ds.PixelRepresentation = 8, 8, 7, 0
        ds.PixelData = bytes(16)
        if burned_in is not None:
            ds.BurnedInAnnotation = burned_in
        declare(ds, declared)
        return ds
    save(image("US"), tmp_path / "us-unstated.dcm")
    save(image("US", "NO"), tmp_path / "us-no.dcm")
    save(image("CT"), tmp_path / "ct-unstated.dcm")
    save(image("XA", "YES"), tmp_path / "xa-yes.dcm")
    save(image("XA", "YES", ["clean-pixel-data"]), tmp_path / "xa-yes-cleaned.dcm")
    strict = gate_check(tmp_path)
    assert strict["us-no.dcm"] == [] and strict["ct-unstated.dcm"] == []
    assert strict["us-unstated.dcm"][0].startswith("(0028,0301) BurnedInAnnotation: absent on a US image")
    assert strict["xa-yes.dcm"][0].startswith("(0028,0301) BurnedInAnnotation: YES")
    assert strict["xa-yes-cleaned.dcm"]
    waived = gate_check("--allow-unstated-burned-in", "--deid-options", "clean-pixel-data", tmp_path)
    assert waived["us-unstated.dcm"] == [] and waived["xa-yes-cleaned.dcm"] == [] and waived["xa-yes.dcm"]


def test_a_long_first_element_does_not_hide_a_bare_data_set(tmp_path):
    """A bare implicit-VR data set whose first element is over 64 KiB and whose last element is cut
    short is DICOM to pydicom (force=True), so it is uncheckable, never 'not DICOM'."""
    ds = Dataset()
    ds.add_new(0x00080005, "CS", "ISO_IR 100")
    ds.add_new(0x00081030, "LO", "x" * 70_000)  # over 64 KiB, as a LO may be in implicit VR
    ds.PatientName = "Doe^John"
    ds.PatientID = "MRN-1"
    path = tmp_path / "bare.dcm"
    ds.save_as(path, implicit_vr=True, little_endian=True)
    cut = path.read_bytes()[:-3]
    path.write_bytes(cut)
    assert str(pydicom.dcmread(path, force=True).PatientName) == "Doe^John"
    verdicts = gate_check("--allow-non-dicom", tmp_path)
    assert verdicts["bare.dcm"] and "cannot be checked" in verdicts["bare.dcm"][0], verdicts["bare.dcm"]


def test_pseudonym_pattern(tmp_path):
    for label, subject, name in [("fits", "LUNG-0007", "LUNG-0007"), ("hospital-id", "12345678", "ANONYMIZED"),
                                 ("name-in-id", "Doe^John", "")]:
        ds = base_instance(subject=subject)
        if name:
            ds.PatientName = name
        save(ds, tmp_path / f"{label}.dcm")
    patterned = gate_check("--pseudonym", "LUNG-[0-9]{4}", tmp_path)
    assert patterned["fits.dcm"] == []
    assert patterned["hospital-id.dcm"][0].startswith("(0010,0020) PatientID")
    assert patterned["name-in-id.dcm"][0].startswith("(0010,0020) PatientID")
    loose = gate_check(tmp_path)
    assert loose["fits.dcm"] == [] and loose["hospital-id.dcm"] == [] and loose["name-in-id.dcm"]
    bad = subprocess.run([cairn_binary(), "gate", "check", "--pseudonym", "([", str(tmp_path)], capture_output=True)
    assert bad.returncode == 2 and b"--pseudonym" in bad.stderr


def test_ingest_upload_and_check_give_the_same_reasons(tmp_path):
    store = Store(tmp_path / "data")
    store.run("init")
    store.run("dataset", "create", "gated", "--deid-options", "retain-patient-characteristics", "--no-text-review")
    shown = store.json("dataset", "show", "gated")
    assert shown["deid_options"] == ["retain-patient-characteristics"] and shown["pseudonym"] is None
    ds = base_instance()
    ds.PatientSex, ds.OperatorsName = "F", "Smith^Anna"
    declare(ds, ["retain-patient-characteristics"])
    path = save(ds, tmp_path / "one.dcm")
    checked = gate_check("--dataset", "gated", "--data", store.root, path)["one.dcm"]
    assert checked == ["(0008,1070) OperatorsName: X/Z/D attribute holds a value that is not a pseudonym (the Patient ID, "
                       "a marker such as ANONYMIZED, or the dataset's --pseudonym pattern)"]
    proc = store.run("ingest", "--dataset", "gated", str(path), check=False)
    assert proc.returncode == 1 and checked[0] in proc.stderr.decode()
    # Naming the options is audited, and the catalogue learns them.
    store.run("dataset", "set", "gated", "--deid-options", "retain-patient-characteristics,retain-uids", "--pseudonym",
              "SUBJ-[0-9]{4}")
    assert store.json("dataset", "show", "gated")["pseudonym"] == "SUBJ-[0-9]{4}"
    actions = [r[0] for r in store.index_sql("SELECT action FROM audit WHERE action = 'dataset.deidentification'")]
    assert len(actions) == 2
    bad = store.run("dataset", "set", "gated", "--deid-options", "retain-everything", check=False)
    assert bad.returncode == 2 and b"not a de-identification option" in bad.stderr
    # The next snapshot publishes the accepted options (never the pseudonym pattern).
    store.run("ingest", "--dataset", "gated", str(save(base_instance(subject="SUBJ-0007"), tmp_path / "ok.dcm")))
    store.run("dataset", "publish", "gated", "--node-id", "gate-node")
    node = Node(store, node_id="gate-node")
    try:
        document = node.get("/v1/datasets/gated/snapshots/latest", node.token(datasets="gated")).json()
    finally:
        node.stop()
    assert document["metadata"]["deid_options"] == ["retain-patient-characteristics", "retain-uids"]
    assert "SUBJ-" not in json.dumps(document["metadata"])


def test_what_a_hostile_review_found(tmp_path):
    """Each case a second review of the verifier found, in a file that declares the removal."""
    def one(label, build, **kwargs):
        ds = base_instance(**kwargs)
        build(ds)
        save(ds, tmp_path / f"{label}.dcm")
    def institution(ds):
        code = Dataset()
        code.CodeValue, code.CodingSchemeDesignator, code.CodeMeaning = "SMH", "99LOCAL", "St Mary's Hospital"
        ds.InstitutionCodeSequence = Sequence([code])
    one("d-sequence", institution)
    # pydicom drops group lengths when it writes: (0010,0000) LT goes in by hand, before Patient ID.
    path = save(base_instance(), tmp_path / "group-length-text.dcm")
    data = path.read_bytes()
    text = b"John Doe 1960-01-01 "
    at = data.index(b"\x10\x00\x20\x00LO")
    path.write_bytes(data[:at] + b"\x10\x00\x00\x00LT" + len(text).to_bytes(2, "little") + text + data[at:])
    # A PDF over 1 KiB in a binary attribute the profile keeps (the parser leaves such values in place).
    one("icc-pdf", lambda ds: ds.add_new(0x00282000, "OB", b"%PDF-1.4\n" + b"Patient John Doe " * 200))
    one("icc-profile", lambda ds: ds.add_new(0x00282000, "OB", b"\x00\x00\x0c\x48" + b"\x01" * 3000))
    def meta_private(ds):
        ds.file_meta.PrivateInformationCreatorUID = "1.2.3.4"
        ds.file_meta.PrivateInformation = b"%PDF-1.4 Jane Doe"
    one("meta-private", meta_private)
    one("id-is-a-name", lambda ds: setattr(ds, "PatientName", "ANON_JOHN_DOE"), subject="ANON_JOHN_DOE")
    one("birth-date-as-pn", lambda ds: ds.add_new(0x00100030, "PN", "19600101"))
    def ultrasound(ds):
        del ds.Modality
        ds.SOPClassUID = ds.file_meta.MediaStorageSOPClassUID = "1.2.840.10008.5.1.4.1.1.6.1"
        ds.Rows = ds.Columns = 2
        ds.SamplesPerPixel, ds.PhotometricInterpretation = 1, "MONOCHROME2"
        ds.BitsAllocated, ds.BitsStored, ds.HighBit, ds.PixelRepresentation = 8, 8, 7, 0
        ds.PixelData = bytes(4)
    one("us-no-modality", ultrasound)
    one("burned-in-unknown", lambda ds: (ultrasound(ds), setattr(ds, "BurnedInAnnotation", "UNKNOWN")))
    def orphan_private(ds):
        ds.add_new(0x01190010, "LO", "GEMS_ACQU_01")  # a creator in another group
        ds.add_new(0x00191023, "DS", "1.0")  # no creator of its own
        declare(ds, ["retain-safe-private"])
    one("orphan-private", orphan_private)
    one("dated-d", lambda ds: setattr(ds, "ContentDate", "20240315"))
    checked = gate_check("--pseudonym", "[0-9]+|SUBJ-[0-9]{4}", "--deid-options", "retain-safe-private", tmp_path)
    expectations = {
        "d-sequence": "(0008,0082) InstitutionCodeSequence", "group-length-text": "(0010,0000)",
        "icc-pdf": "(0028,2000)", "meta-private": "(0002,0102)", "id-is-a-name": "(0010,0020) PatientID",
        "birth-date-as-pn": "(0010,0030) PatientBirthDate", "us-no-modality": "(0028,0301) BurnedInAnnotation",
        "burned-in-unknown": "(0028,0301) BurnedInAnnotation", "orphan-private": "(0019,1023) private attribute",
        "dated-d": "(0008,0023) ContentDate",
    }
    for label, named in expectations.items():
        assert any(r.startswith(named) for r in checked[f"{label}.dcm"]), (label, checked[f"{label}.dcm"])
    assert checked["icc-profile.dcm"] == [], checked["icc-profile.dcm"]
    # Without a pattern, a Patient ID with no digit is not taken for a pseudonym either.
    assert any(r.startswith("(0010,0020) PatientID") for r in gate_check(tmp_path)["id-is-a-name.dcm"])
