"""`cairn dicom dump --json` against pydicom's DICOM JSON model, element by element, for every
DICOM test file (pydicom's own, see conftest.dicom_test_files; public, non-bulk elements). A file
where the two disagree must be listed in KNOWN_DIFFERENCES with the reason pydicom and the standard
disagree."""
import json
import math
import subprocess
import warnings

import pydicom
import pytest

from conftest import cairn_binary, dicom_file_id, dicom_roots, dicom_test_files

BULK_VRS = {"OB", "OD", "OF", "OL", "OV", "OW", "UN"}

# file name -> why cairn's answer differs from pydicom's, by design.
KNOWN_DIFFERENCES = {
    "MR_truncated.dcm": "Pixel Data's length runs past the end of the file; pydicom reads a short value "
                        "with a warning, cairn refuses a truncated file with an error naming the offset",
    "rtplan_truncated.dcm": "a sequence's length runs past the end of the file; cairn refuses it",
    "no_meta.dcm": "a stray byte precedes the first element; pydicom (force=True) reads garbage elements, "
                   "cairn reports that it is not DICOM",
    "DICOMDIR-nooffset": "a directory record item's length runs past its sequence's declared length; pydicom reads "
                         "on past the sequence, cairn refuses the inconsistent lengths",
}

# file name -> why pydicom fails where cairn reads the file.
PYDICOM_FAILS = {
    "badVR.dcm": "an IS value is '1A', not an integer: pydicom's to_json_dict raises; cairn keeps the text "
                 "as a string so that the rest of the data set can still be read",
}


def normalise(model):
    """Puts both models in one form where pydicom departs from the letter of the standard:
    - bulk data and group lengths are dropped (cairn leaves them out);
    - an empty "Value" array is dropped: PS3.18 F.2.2 omits Value for an empty attribute, pydicom
      writes [] for a sequence with no items;
    - an empty component of a multi-valued string is null (PS3.18 F.2.5); pydicom writes "";
    - padding spaces of each CS value are dropped: PS3.5 6.2 makes them insignificant, pydicom
      strips them only at the ends of the whole multi-valued string.
    """
    out = {}
    for tag, element in model.items():
        if element.get("vr") in BULK_VRS or tag == "7FE00010" or tag.endswith("0000"):
            continue
        element = dict(element)
        element.pop("BulkDataURI", None)
        element.pop("InlineBinary", None)
        if element.get("Value") == []:
            del element["Value"]
        if element.get("vr") == "SQ" and "Value" in element:
            element["Value"] = [normalise(item) for item in element["Value"]]
        elif "Value" in element:
            values = [None if v == "" else v for v in element["Value"]]
            if element["vr"] == "CS":
                values = [v.strip(" ") if isinstance(v, str) else v for v in values]
            if all(v is None for v in values):
                del element["Value"]
            else:
                element["Value"] = values
        out[tag] = element
    return out


def same(a, b, path="") -> list:
    """Differences between two JSON values; numbers compare as numbers."""
    if isinstance(a, bool) or isinstance(b, bool):
        return [] if a == b else [f"{path}: {a!r} != {b!r}"]
    if isinstance(a, (int, float)) and isinstance(b, (int, float)):
        if a == b or (math.isclose(float(a), float(b), rel_tol=1e-9, abs_tol=1e-12)):
            return []
        return [f"{path}: {a!r} != {b!r}"]
    if isinstance(a, dict) and isinstance(b, dict):
        diffs = []
        for key in sorted(set(a) | set(b)):
            if key not in a:
                diffs.append(f"{path}/{key}: only in cairn: {json.dumps(b[key])[:120]}")
            elif key not in b:
                diffs.append(f"{path}/{key}: only in pydicom: {json.dumps(a[key])[:120]}")
            else:
                diffs += same(a[key], b[key], f"{path}/{key}")
        return diffs
    if isinstance(a, list) and isinstance(b, list):
        if len(a) != len(b):
            return [f"{path}: {len(a)} values != {len(b)}: {json.dumps(a)[:120]} vs {json.dumps(b)[:120]}"]
        return [d for i, (x, y) in enumerate(zip(a, b)) for d in same(x, y, f"{path}[{i}]")]
    return [] if a == b else [f"{path}: {a!r} != {b!r}"]


def pydicom_model(path):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        try:
            ds = pydicom.dcmread(path, force=False)
        except Exception:
            try:
                ds = pydicom.dcmread(path, force=True)
                if len(ds) == 0:
                    return None
            except Exception:
                return None
        try:
            return ds.to_json_dict(bulk_data_threshold=1, bulk_data_element_handler=lambda e: "bulk")
        except Exception:
            return None


def candidate_files():
    return [p for p in dicom_test_files() if p.suffix not in (".txt", ".json", ".dump", ".icc", ".gz") and p.name != "README"]


CANDIDATES = candidate_files()


def test_named_exceptions_are_among_the_files():
    """A listed file that is no longer tested would hide nothing and excuse nothing: keep the lists current."""
    names = {p.name for p in CANDIDATES}
    assert not (set(KNOWN_DIFFERENCES) | set(PYDICOM_FAILS)) - names


# No files at all is one failing case, not an empty parameter set (which pytest skips).
@pytest.mark.parametrize("path", CANDIDATES or [pytest.param(None, id="no-files")], ids=dicom_file_id)
def test_json_model_matches_pydicom(path):
    assert path is not None, f"no DICOM test files under {', '.join(map(str, dicom_roots()))}"
    expected = pydicom_model(path)
    proc = subprocess.run([cairn_binary(), "dicom", "dump", "--json", str(path)], capture_output=True)
    if path.name in KNOWN_DIFFERENCES:
        assert proc.returncode != 0 or expected is None, f"{path.name} is listed as different but now matches"
        assert proc.returncode != 0 and b"offset" in proc.stderr or b"not a DICOM file" in proc.stderr
        return
    if path.name in PYDICOM_FAILS:
        assert expected is None and proc.returncode == 0, f"{path.name} is listed as unreadable by pydicom"
        return
    if expected is None:
        assert proc.returncode == 2, f"pydicom cannot read {path.name}; cairn should refuse it too"
        assert proc.stderr
        return
    assert proc.returncode == 0, proc.stderr.decode()
    ours = json.loads(proc.stdout)
    diffs = same(normalise(expected), normalise(ours))
    assert not diffs, f"{path.name}: {len(diffs)} differences:\n" + "\n".join(diffs[:25])
