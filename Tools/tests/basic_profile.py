"""PS3.15 Table E.1-1 as the node holds it (Sources/CairnDICOM/ConfidentialityProfile+Generated.swift),
read here for the tests that plant values in every row and that de-identify real files into a
clean control set. The de-identifier below is the tests' own, written from the table alone: it
shares no code with the node's verifier."""
import re
from pathlib import Path

from pydicom.dataelem import DataElement
from pydicom.datadict import dictionary_VR
from pydicom.dataset import Dataset
from pydicom.sequence import Sequence

REPO = Path(__file__).resolve().parents[2]
GENERATED = REPO / "Sources" / "CairnDICOM" / "ConfidentialityProfile+Generated.swift"

# CID 7050 codes by the names `--deid-options` takes.
OPTIONS = {
    "clean-pixel-data": "113101", "clean-recognizable-visual-features": "113102", "clean-graphics": "113103",
    "clean-structured-content": "113104", "clean-descriptors": "113105", "retain-longitudinal-full-dates": "113106",
    "retain-longitudinal-modified-dates": "113107", "retain-patient-characteristics": "113108",
    "retain-device-identity": "113109", "retain-uids": "113110", "retain-safe-private": "113111",
    "retain-institution-identity": "113112",
}
CODE_NAMES = {code: name for name, code in OPTIONS.items()}
# What the generated de-identified files declare (dicom_gen.py, Tools/gen/make_corpus.py): dates
# shifted, patient characteristics kept.
GENERATED_OPTIONS = ["retain-longitudinal-modified-dates", "retain-patient-characteristics"]


def table():
    """{key: (basic action, {option name: action})}; key is 8 hex digits, a masked pattern such as
    60xx3000, or 'private'."""
    text = GENERATED.read_text()
    body = re.search(r'tableSource = """\n(.*?)\n"""', text, re.S).group(1)
    rows = {}
    for line in body.splitlines():
        fields = line.split()
        options = {CODE_NAMES[c.split(":")[0]]: c.split(":")[1] for c in fields[2:]}
        rows[fields[0]] = (fields[1], options)
    return rows


def effective(action: str, options: dict, active: set) -> str:
    """The action in force: an active option that names the row decides (K or C keep the value)."""
    chosen = [options[o] for o in active if o in options]
    if any(a in ("K", "C") for a in chosen):
        return "K"
    return chosen[0] if chosen else action


def declare(ds: Dataset, options=()):
    """Patient Identity Removed = YES and the options in De-identification Method Code Sequence."""
    ds.PatientIdentityRemoved = "YES"
    ds.DeidentificationMethod = "Cairn tests (PS3.15 Basic Profile)"
    items = []
    for code in ["113100"] + [OPTIONS[o] for o in options]:
        item = Dataset()
        item.CodeValue, item.CodingSchemeDesignator = code, "DCM"
        item.CodeMeaning = CODE_NAMES.get(code, "Basic Application Confidentiality Profile")
        items.append(item)
    ds.DeidentificationMethodCodeSequence = Sequence(items)


def deidentify(ds: Dataset, options: set, rows=None, pseudonym="SUBJ-0001"):
    """Removes what the Basic Profile under `options` does not keep, at every depth: X, Z and D
    attributes go (a D person name or ID becomes the pseudonym), U and kept ones stay, private
    attributes go. Returns the dataset, declared."""
    rows = rows or table()

    def row_of(tag):
        key = f"{tag:08X}"
        if key in rows:
            return rows[key]
        for pattern, row in rows.items():
            if "x" in pattern and all(p == "x" or p == k for p, k in zip(pattern, key)):
                return row
        return None

    def clean(d: Dataset):
        for elem in list(d):
            if elem.tag.is_private:
                del d[elem.tag]
                continue
            row = row_of(elem.tag)
            if row is None:
                if elem.VR == "SQ":
                    for item in elem.value:
                        clean(item)
                continue
            action = effective(row[0], row[1], options)
            if action == "K" or "U" in action:
                if elem.VR == "SQ":
                    for item in elem.value:
                        clean(item)
            elif "D" in action and elem.VR in ("PN", "LO", "SH") and elem.tag == 0x00100020:
                elem.value = pseudonym
            elif "D" in action and elem.VR == "PN":
                elem.value = "ANONYMIZED"
            else:
                del d[elem.tag]

    clean(ds)
    ds.PatientID = pseudonym
    declare(ds, options)
    return ds


def planted_value(tag: int, vr: str):
    """A real-looking value of `vr` for a planted attribute."""
    if vr == "SQ":
        item = Dataset()
        item.PatientName = "Doe^John"
        return Sequence([item])
    return {
        "PN": "Doe^John", "DA": "20200101", "TM": "120000", "DT": "20200101120000", "AS": "045Y", "DS": "1.5",
        "IS": "7", "UI": "1.2.826.0.1.3680043.8.498.77", "AT": 0x00100010, "CS": "PLANTED", "AE": "PLANTED",
        "UR": "http://example.org/doe",
    }.get(vr, b"\x01\x02\x03\x04" if vr in ("OB", "OW", "OF", "OD", "OL", "OV", "UN") else
          1 if vr in ("US", "SS", "UL", "SL", "FL", "FD", "SV", "UV") else "Doe John PLANTED")


def concrete_tag(key: str) -> int:
    """A tag a masked row matches: x digits of the group as 0; a masked element as (gggg,3000),
    the data of a curve (an element 0000 would be a group length)."""
    group, element = key[:4].replace("x", "0"), key[4:]
    return int(group + ("3000" if "x" in element else element), 16)


def planted_element(key: str):
    tag = concrete_tag(key)
    try:
        vr = dictionary_VR(tag).split(" or ")[0]
    except KeyError:
        vr = "OB" if key.startswith("50") else "LO"
    return DataElement(tag, vr, planted_value(tag, vr))
