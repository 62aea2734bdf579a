#!/usr/bin/env python3
"""Writes a synthetic, de-identified DICOM corpus that looks like a hospital export.

Series of 16-bit CT slices (body, lungs, bone, quantum noise), 16-bit MR slices, a few large
digital radiographs, and JPEG Baseline (lossy, encapsulated) secondary captures. Every file
declares PatientIdentityRemoved = YES, the PS3.15 Basic Profile with the Retain Longitudinal
Temporal Information (modified dates) and Retain Patient Characteristics options, and carries only
pseudonyms, so no PHI is generated. A gated dataset takes it with
`--deid-options retain-longitudinal-modified-dates,retain-patient-characteristics`.

    python3 Tools/gen/make_corpus.py OUT_DIR [--ct 600] [--mr 100] [--dx 6] [--jpeg 60] [--seed 1]
"""
import argparse
import io
import os
import sys

import numpy as np
from PIL import Image
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.encaps import encapsulate
from pydicom.uid import (
    CTImageStorage,
    DigitalXRayImageStorageForPresentation,
    ExplicitVRLittleEndian,
    JPEGBaseline8Bit,
    MRImageStorage,
    SecondaryCaptureImageStorage,
    generate_uid,
)

MANUFACTURERS = ["SIEMENS", "GE MEDICAL SYSTEMS", "Philips", "TOSHIBA", "Canon Medical Systems"]
BODY_PARTS = ["CHEST", "ABDOMEN", "HEAD", "BREAST", "PELVIS"]


def base_dataset(rng, sop_class, modality, subject, study_uid, series_uid, number):
    meta = FileMetaDataset()
    meta.MediaStorageSOPClassUID = sop_class
    meta.MediaStorageSOPInstanceUID = generate_uid()
    meta.TransferSyntaxUID = ExplicitVRLittleEndian
    ds = Dataset()
    ds.file_meta = meta
    ds.SpecificCharacterSet = "ISO_IR 100"
    ds.SOPClassUID = sop_class
    ds.SOPInstanceUID = meta.MediaStorageSOPInstanceUID
    ds.StudyInstanceUID = study_uid
    ds.SeriesInstanceUID = series_uid
    ds.Modality = modality
    ds.PatientName = f"ANON^{subject}"
    ds.PatientID = subject
    ds.PatientSex = "F" if int(subject[-4:], 16) % 2 else "M"
    ds.PatientAge = f"{30 + int(subject[-4:], 16) % 60:03d}Y"
    ds.PatientIdentityRemoved = "YES"
    ds.DeidentificationMethod = "Cairn synthetic corpus"
    methods = []
    for code, meaning in [("113100", "Basic Application Confidentiality Profile"),
                          ("113107", "Retain Longitudinal Temporal Information Modified Dates Option"),
                          ("113108", "Retain Patient Characteristics Option")]:
        item = Dataset()
        item.CodeValue, item.CodingSchemeDesignator, item.CodeMeaning = code, "DCM", meaning
        methods.append(item)
    ds.DeidentificationMethodCodeSequence = methods
    ds.StudyDate = "20240101"
    ds.Manufacturer = MANUFACTURERS[int(subject[-4:], 16) % len(MANUFACTURERS)]
    ds.BodyPartExamined = BODY_PARTS[int(subject[-4:], 16) % len(BODY_PARTS)]
    ds.InstanceNumber = number
    ds.SeriesNumber = 1
    return ds


def set_pixels_16(ds, pixels, bits_stored, signed=False):
    ds.SamplesPerPixel = 1
    ds.PhotometricInterpretation = "MONOCHROME2"
    ds.Rows, ds.Columns = pixels.shape
    ds.BitsAllocated = 16
    ds.BitsStored = bits_stored
    ds.HighBit = bits_stored - 1
    ds.PixelRepresentation = 1 if signed else 0
    ds.PixelData = pixels.astype("<i2" if signed else "<u2").tobytes()


def ellipse(shape, cy, cx, ry, rx):
    y, x = np.ogrid[: shape[0], : shape[1]]
    return ((y - cy) / ry) ** 2 + ((x - cx) / rx) ** 2 <= 1


def ct_slice(rng, z):
    shape = (512, 512)
    hu = np.full(shape, -1000.0)
    body = ellipse(shape, 256, 256, 180 + 10 * np.sin(z / 9), 230)
    hu[body] = 40
    for cx in (180, 332):
        hu[ellipse(shape, 240, cx, 110 + 8 * np.cos(z / 7), 60)] = -820
    ring = ellipse(shape, 256, 256, 175, 225) & ~ellipse(shape, 256, 256, 165, 215)
    hu[ring & body] = 700
    hu[ellipse(shape, 330, 256, 25, 25)] = 1100  # spine
    hu += rng.normal(0, 12, shape)
    stored = np.clip(hu + 1024, 0, 4095)
    return stored.astype(np.uint16)


def mr_slice(rng, z):
    shape = (256, 256)
    img = np.zeros(shape)
    img[ellipse(shape, 128, 128, 100, 85)] = 600
    img[ellipse(shape, 128, 128, 80, 65)] = 900 + 50 * np.sin(z)
    img[ellipse(shape, 110 + z % 7, 140, 18, 14)] = 1400
    img = np.abs(img + rng.normal(0, 25, shape) + 1j * rng.normal(0, 25, shape))
    return np.clip(img, 0, 4095).astype(np.uint16)


def radiograph(rng):
    shape = (3000, 2500)
    y = np.linspace(-1, 1, shape[0])[:, None]
    x = np.linspace(-1, 1, shape[1])[None, :]
    img = 2500 - 1200 * np.exp(-((x / 0.55) ** 2 + (y / 0.7) ** 2))
    img += 300 * np.cos(12 * y) * np.exp(-((x / 0.4) ** 2))
    img += rng.normal(0, 18, shape)
    return np.clip(img, 0, 4095).astype(np.uint16)


def jpeg_capture(rng, index):
    shape = (512, 512)
    y, x = np.mgrid[: shape[0], : shape[1]]
    img = 128 + 60 * np.sin(x / (17 + index % 5)) * np.cos(y / 23) + rng.normal(0, 8, shape)
    img = np.clip(img, 0, 255).astype(np.uint8)
    buf = io.BytesIO()
    Image.fromarray(img, mode="L").save(buf, format="JPEG", quality=90)
    return buf.getvalue(), shape


def write(ds, out, name):
    path = os.path.join(out, name)
    ds.save_as(path, enforce_file_format=True)
    return os.path.getsize(path)


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("out")
    parser.add_argument("--ct", type=int, default=600, help="CT slices (512x512, 16-bit)")
    parser.add_argument("--mr", type=int, default=100, help="MR slices (256x256, 16-bit)")
    parser.add_argument("--dx", type=int, default=6, help="radiographs (3000x2500, 16-bit)")
    parser.add_argument("--jpeg", type=int, default=60, help="JPEG Baseline secondary captures (512x512)")
    parser.add_argument("--slices-per-series", type=int, default=120)
    parser.add_argument("--seed", type=int, default=1)
    args = parser.parse_args()
    rng = np.random.default_rng(args.seed)
    os.makedirs(args.out, exist_ok=True)
    total = 0
    count = 0

    def subject_id(n):
        return f"SUBJ-{args.seed:03d}-{n:04x}"

    for start in range(0, args.ct, args.slices_per_series):
        subject = subject_id(start // args.slices_per_series)
        study, series = generate_uid(), generate_uid()
        for z in range(start, min(args.ct, start + args.slices_per_series)):
            ds = base_dataset(rng, CTImageStorage, "CT", subject, study, series, z - start + 1)
            ds.RescaleIntercept = -1024
            ds.RescaleSlope = 1
            ds.SliceThickness = 1.25
            ds.ImagePositionPatient = [-250, -250, z * 1.25]
            set_pixels_16(ds, ct_slice(rng, z), 12)
            total += write(ds, args.out, f"ct_{z:05d}.dcm")
            count += 1
    for z in range(args.mr):
        subject = subject_id(1000 + z // 50)
        ds = base_dataset(rng, MRImageStorage, "MR", subject, generate_uid() if z % 50 == 0 else study, series, z + 1)
        if z % 50 == 0:
            study, series = ds.StudyInstanceUID, generate_uid()
            ds.SeriesInstanceUID = series
        set_pixels_16(ds, mr_slice(rng, z), 12)
        total += write(ds, args.out, f"mr_{z:05d}.dcm")
        count += 1
    for n in range(args.dx):
        ds = base_dataset(rng, DigitalXRayImageStorageForPresentation, "DX", subject_id(2000 + n),
                          generate_uid(), generate_uid(), 1)
        set_pixels_16(ds, radiograph(rng), 12)
        total += write(ds, args.out, f"dx_{n:03d}.dcm")
        count += 1
    for n in range(args.jpeg):
        ds = base_dataset(rng, SecondaryCaptureImageStorage, "OT", subject_id(3000 + n // 10),
                          generate_uid(), generate_uid(), n + 1)
        ds.file_meta.TransferSyntaxUID = JPEGBaseline8Bit
        jpeg, shape = jpeg_capture(rng, n)
        ds.SamplesPerPixel = 1
        ds.PhotometricInterpretation = "MONOCHROME2"
        ds.Rows, ds.Columns = shape
        ds.BitsAllocated = 8
        ds.BitsStored = 8
        ds.HighBit = 7
        ds.PixelRepresentation = 0
        ds.PixelData = encapsulate([jpeg])
        ds.BurnedInAnnotation = "NO"  # a secondary capture states it; the gate refuses one that does not
        ds["PixelData"].VR = "OB"
        total += write(ds, args.out, f"sc_jpeg_{n:04d}.dcm")
        count += 1
    print(f"wrote {count} files, {total / 1e6:.1f} MB, to {args.out}", file=sys.stderr)


if __name__ == "__main__":
    main()
