#!/usr/bin/env python3
"""Writes an identifiable DICOM instance and every way to damage it that the de-identification gate
must still refuse: truncation at every element boundary and at random offsets, no preamble, DICM at
offset 0, a transfer syntax that does not match the bytes, deflated and cut, wrapped in zip, gzip
and tar, leading junk, the name moved into a private element, into a sequence item, or hidden
behind an empty duplicate. The people are invented (no PHI); the file is identifiable in form.

    python3 Tools/gen/make_identifiable.py OUT_DIR [--seed N]

Prints one line per file: its name and what was done to it. Used by Tools/tests/test_gate.py and as
the seed corpus of the gate's fuzz target (Tools/fuzz/run.sh 600 FuzzDeidGate).
"""
import argparse
import gzip
import io
import random
import struct
import tarfile
import zipfile
import zlib
from pathlib import Path

import numpy as np
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.sequence import Sequence
from pydicom.uid import (CTImageStorage, DeflatedExplicitVRLittleEndian, ExplicitVRLittleEndian,
                         ImplicitVRLittleEndian)

NAME = "MUSTERMANN^ERIKA"
# Explicit VR: these VRs have a 2-byte reserved field and a 4-byte length (PS3.5 7.1.2).
LONG_VRS = {b"OB", b"OD", b"OF", b"OL", b"OV", b"OW", b"SQ", b"SV", b"UC", b"UN", b"UR", b"UT", b"UV"}


def file_meta(transfer_syntax):
    meta = FileMetaDataset()
    meta.MediaStorageSOPClassUID = CTImageStorage
    meta.MediaStorageSOPInstanceUID = "1.2.826.0.1.3680043.8.498.1001"
    meta.TransferSyntaxUID = transfer_syntax
    return meta


def identifiable_dataset(transfer_syntax=ExplicitVRLittleEndian, rows=32, columns=32):
    meta = file_meta(transfer_syntax)
    ds = Dataset()
    ds.file_meta = meta
    ds.SpecificCharacterSet = "ISO_IR 100"
    ds.SOPClassUID = CTImageStorage
    ds.SOPInstanceUID = meta.MediaStorageSOPInstanceUID
    ds.StudyDate = "20240101"
    ds.Modality = "CT"
    ds.Manufacturer = "SIEMENS"
    ds.PatientName = NAME
    ds.PatientID = "4711-0815"
    ds.PatientBirthDate = "19610412"
    ds.PatientSex = "F"
    ds.StudyInstanceUID = "1.2.826.0.1.3680043.8.498.2001"
    ds.SeriesInstanceUID = "1.2.826.0.1.3680043.8.498.3001"
    ds.SamplesPerPixel = 1
    ds.PhotometricInterpretation = "MONOCHROME2"
    ds.Rows = rows
    ds.Columns = columns
    ds.BitsAllocated = 16
    ds.BitsStored = 12
    ds.HighBit = 11
    ds.PixelRepresentation = 0
    ds.PixelData = (np.arange(rows * columns, dtype="<u2") % 4096).tobytes()
    return ds


def encode(ds, implicit=False, preamble=True, meta=True):
    buffer = io.BytesIO()
    ds.save_as(buffer, implicit_vr=implicit, little_endian=True, enforce_file_format=meta)
    data = buffer.getvalue()
    if meta and not preamble:
        data = data[128:]
    return data


def top_level_boundaries(data, start):
    """Offsets where each top-level element of an explicit VR little endian data set starts."""
    offsets, at = [], start
    while at + 8 <= len(data):
        offsets.append(at)
        vr = data[at + 4:at + 6]
        if vr in LONG_VRS:
            (length,) = struct.unpack_from("<I", data, at + 8)
            at += 12 + length
        else:
            (length,) = struct.unpack_from("<H", data, at + 6)
            at += 8 + length
    return offsets


def meta_end(data):
    """Where the data set starts after the preamble, DICM and the File Meta group."""
    (group_length,) = struct.unpack_from("<I", data, 132 + 8)
    return 132 + 12 + group_length


def deflated_header():
    """Preamble, DICM and a File Meta group declaring Deflated Explicit VR Little Endian."""
    holder = Dataset()
    holder.file_meta = file_meta(DeflatedExplicitVRLittleEndian)
    buffer = io.BytesIO()
    holder.save_as(buffer, enforce_file_format=True)
    data = buffer.getvalue()
    return data[:meta_end(data)]


def deflated(ds):
    """Deflated Explicit VR Little Endian written by hand: the meta group, then raw DEFLATE."""
    plain = encode(ds)
    compressor = zlib.compressobj(9, zlib.DEFLATED, -15)
    return deflated_header() + compressor.compress(plain[meta_end(plain):]) + compressor.flush()


def replace_transfer_syntax(data, old, new):
    """The meta group's Transfer Syntax UID swapped for one of the same padded length."""
    def padded(uid):
        raw = uid.encode()
        return raw + b"\0" if len(raw) % 2 else raw
    old_b, new_b = padded(old), padded(new)
    assert len(old_b) == len(new_b), (old, new)
    return data.replace(old_b, new_b, 1)


def variants(seed):
    rng = random.Random(seed)
    full = encode(identifiable_dataset())
    start = meta_end(full)
    out = {"full.dcm": (full, "identifiable, intact")}
    for i, offset in enumerate(top_level_boundaries(full, start)):
        if offset > start:
            out[f"cut-element-{i:02d}.dcm"] = (full[:offset], f"cut at the element boundary at offset {offset}")
    for i in range(20):
        offset = rng.randrange(1, len(full))
        out[f"cut-random-{i:02d}.dcm"] = (full[:offset], f"cut at random offset {offset} (seed {seed})")
    implicit_bare = encode(identifiable_dataset(ImplicitVRLittleEndian), implicit=True, meta=False)
    out["bare-implicit.dcm"] = (implicit_bare, "no preamble, no File Meta, implicit VR")
    out["bare-implicit-cut.dcm"] = (implicit_bare[:-100], "no preamble, no File Meta, implicit VR, cut 100 bytes short")
    explicit_bare = encode(identifiable_dataset(), meta=False)
    out["bare-explicit-cut.dcm"] = (explicit_bare[:-100], "no preamble, no File Meta, explicit VR, cut 100 bytes short")
    dicm0 = full[128:]
    out["dicm-at-0.dcm"] = (dicm0, "DICM at offset 0 instead of 128")
    out["dicm-at-0-cut.dcm"] = (dicm0[:-100], "DICM at offset 0, cut 100 bytes short")
    out["preamble-cut.dcm"] = (full[:-100], "preamble and meta, cut 100 bytes short")
    out["declared-big-endian.dcm"] = (
        replace_transfer_syntax(full, ExplicitVRLittleEndian, "1.2.840.10008.1.2.2"),
        "declares Explicit VR Big Endian, written little endian")
    out["declared-implicit.dcm"] = (full.replace(b"1.2.840.10008.1.2.1\0", b"1.2.840.10008.1.2\0\0\0", 1),
                                    "declares Implicit VR Little Endian, written explicit")
    deflated_meta = deflated_header()
    out["declared-deflated.dcm"] = (deflated_meta + full[start:], "declares Deflated, written plain")
    dfl = deflated(identifiable_dataset())
    out["deflated.dcm"] = (dfl, "Deflated Explicit VR Little Endian, intact")
    for cut in (10, 100, len(dfl) // 2):
        out[f"deflated-cut-{cut}.dcm"] = (dfl[:-cut], f"deflated, cut {cut} bytes short")
    zipped = io.BytesIO()
    with zipfile.ZipFile(zipped, "w") as archive:
        archive.writestr("scan.dcm", full)
    out["wrapped.zip"] = (zipped.getvalue(), "inside a zip archive")
    out["wrapped.dcm.gz"] = (gzip.compress(full), "gzip-compressed")
    tarred = io.BytesIO()
    with tarfile.open(fileobj=tarred, mode="w") as archive:
        info = tarfile.TarInfo("scan.dcm")
        info.size = len(full)
        archive.addfile(info, io.BytesIO(full))
    out["wrapped.tar"] = (tarred.getvalue(), "inside a tar archive")
    out["junk-7.dcm"] = (bytes(rng.randrange(256) for _ in range(7)) + full, "7 bytes of junk before the preamble")
    out["junk-1000.dcm"] = (bytes(rng.randrange(256) for _ in range(1000)) + dicm0,
                            "1000 bytes of junk before DICM")
    moved = identifiable_dataset()
    del moved.PatientName
    del moved.PatientBirthDate
    moved.add_new(0x00090010, "LO", "ACME 1.1")
    moved.add_new(0x00091001, "PN", NAME)
    out["private-name.dcm"] = (encode(moved), "the name only in a private PN element")
    nested = identifiable_dataset()
    del nested.PatientName
    del nested.PatientBirthDate
    item = Dataset()
    item.PatientName = NAME
    item.PatientBirthDate = "19610412"
    nested.ReferencedPatientSequence = Sequence([item])
    out["name-in-sequence.dcm"] = (encode(nested), "the name only inside a sequence item")
    # An empty Patient Name first, the real one after it: a reader that takes the first wins nothing.
    empty = identifiable_dataset()
    empty.PatientName = ""
    with_empty = encode(empty)
    element = struct.pack("<HH2sH", 0x0010, 0x0010, b"PN", len(NAME)) + NAME.encode()
    at = with_empty.index(struct.pack("<HH2sH", 0x0010, 0x0010, b"PN", 0)) + 8
    out["duplicate-name.dcm"] = (with_empty[:at] + element + with_empty[at:], "an empty Patient Name, then the real one")
    out.update(hidden_variants())
    return out


def without_identifiers():
    ds = identifiable_dataset()
    del ds.PatientName
    del ds.PatientBirthDate
    return ds


def hidden_variants():
    """Identifiers where a reader may not look (found by a hostile review of the gate)."""
    out = {}

    def with_meta_elements(data, extra):
        end = meta_end(data)
        (group_length,) = struct.unpack_from("<I", data, 132 + 8)
        return data[:140] + struct.pack("<I", group_length + len(extra)) + data[144:end] + extra + data[end:]

    item = (struct.pack("<HH2sH", 0x0010, 0x0010, b"PN", len(NAME)) + NAME.encode()
            + struct.pack("<HH2sH", 0x0010, 0x0030, b"DA", 8) + b"19610412")
    sequence = (struct.pack("<HH2sHI", 0x0002, 0x0200, b"SQ", 0, 0xFFFFFFFF) + struct.pack("<HHI", 0xFFFE, 0xE000, len(item))
                + item + struct.pack("<HHI", 0xFFFE, 0xE0DD, 0))
    out["meta-sequence.dcm"] = (with_meta_elements(encode(without_identifiers()), sequence),
                                "the name in a sequence inside the File Meta group")
    out["meta-person-name.dcm"] = (with_meta_elements(encode(without_identifiers()),
                                                      struct.pack("<HH2sH", 0x0002, 0x0200, b"PN", len(NAME)) + NAME.encode()),
                                   "a PN element in the File Meta group")
    implicit = without_identifiers()
    implicit.file_meta.TransferSyntaxUID = ImplicitVRLittleEndian
    implicit.add_new(0x00210010, "LO", "BRIT Systems, Inc.")
    inner = Dataset()
    inner.PatientName = NAME
    inner.PatientBirthDate = "19610412"
    implicit.add_new(0x00211000, "SQ", Sequence([inner]))
    out["implicit-private-sequence.dcm"] = (encode(implicit, implicit=True), "the name in a private sequence, implicit VR (read as UN)")
    explicit = without_identifiers()
    explicit.add_new(0x00210010, "LO", "BRIT Systems, Inc.")
    raw_item = b"".join(struct.pack("<HHI", g, e, len(v)) + v for g, e, v in
                        [(0x0010, 0x0010, NAME.encode()), (0x0010, 0x0030, b"19610412")])
    explicit.add_new(0x00211000, "UN", struct.pack("<HHI", 0xFFFE, 0xE000, len(raw_item)) + raw_item)
    out["private-un-sequence.dcm"] = (encode(explicit), "the name in a private UN value holding an item")
    for name, value, what in [("anon-then-name.dcm", "ANON\\" + NAME, "ANON, then the real name as a second value"),
                              ("anon-like-surname.dcm", "Anonsen^Kari", "a surname that starts like ANON")]:
        ds = identifiable_dataset()
        del ds.PatientBirthDate
        ds.PatientName = value
        out[name] = (encode(ds), what)
    same = identifiable_dataset()
    del same.PatientBirthDate
    same.PatientID = NAME
    out["id-equals-name.dcm"] = (encode(same), "the real name as PatientID and PatientName")
    alternative = without_identifiers()
    alternative.add_new(0x00100033, "LO", "19610412")
    out["birth-date-alternative-calendar.dcm"] = (encode(alternative), "the birth date in an alternative calendar")
    content = without_identifiers()
    person = Dataset()
    person.PersonName = NAME
    content.ContentSequence = Sequence([person])
    out["person-name-in-content.dcm"] = (encode(content), "a Person Name inside a content item")
    plain = encode(without_identifiers())
    hidden = (struct.pack("<HH2sH", 0x0008, 0x0100, b"SH", 4) + b"T-D1" + struct.pack("<HHI", 0xFFFE, 0xE00D, 0)
              + struct.pack("<HH2sH", 0x0010, 0x0010, b"PN", len(NAME)) + NAME.encode())
    referenced = (struct.pack("<HH2sHI", 0x0008, 0x1120, b"SQ", 0, 8 + len(hidden))
                  + struct.pack("<HHI", 0xFFFE, 0xE000, len(hidden)) + hidden)
    at = plain.index(struct.pack("<HH", 0x0010, 0x0020))
    out["item-delimiter-hides-name.dcm"] = (plain[:at] + referenced + plain[at:],
                                            "the name after an item delimiter inside an item of defined length")
    creator = without_identifiers()
    creator.add_new(0x00090010, "PN", NAME)
    out["private-creator-name.dcm"] = (encode(creator), "the name as a private creator of VR PN")
    full = encode(identifiable_dataset())
    out["deflated-then-file.dcm"] = (deflated(without_identifiers()) + full, "a clean deflated data set, then an identifiable file")
    out["trailing-padding-file.dcm"] = (plain + struct.pack("<HH2sHI", 0xFFFC, 0xFFFC, b"OB", 0, len(full)) + full,
                                        "an identifiable file inside Data Set Trailing Padding")
    return out


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("out")
    parser.add_argument("--seed", type=int, default=1)
    args = parser.parse_args()
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    for name, (data, what) in variants(args.seed).items():
        (out / name).write_bytes(data)
        print(f"{name}\t{what}")


if __name__ == "__main__":
    main()
