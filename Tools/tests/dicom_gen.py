"""Generated DICOM studies for the acceptance tests and benchmarks."""
from pathlib import Path

import numpy as np
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.uid import CTImageStorage, ExplicitVRLittleEndian, generate_uid

from basic_profile import GENERATED_OPTIONS, declare


def write_ct_study(folder: Path, subject: str, series_count=2, slices=12, size=64, seed=1):
    """A de-identified CT study with `series_count` axial series, geometry complete enough for
    SimpleITK and dicom2nifti; returns {series uid: [paths]}."""
    rng = np.random.default_rng(seed)
    study = generate_uid()
    out = {}
    for s in range(series_count):
        series = generate_uid()
        out[series] = []
        for z in range(slices):
            meta = FileMetaDataset()
            meta.MediaStorageSOPClassUID = CTImageStorage
            meta.MediaStorageSOPInstanceUID = generate_uid()
            meta.TransferSyntaxUID = ExplicitVRLittleEndian
            ds = Dataset()
            ds.file_meta = meta
            ds.SOPClassUID, ds.SOPInstanceUID = CTImageStorage, meta.MediaStorageSOPInstanceUID
            ds.StudyInstanceUID, ds.SeriesInstanceUID = study, series
            ds.Modality, ds.PatientID = "CT", subject
            declare(ds, GENERATED_OPTIONS)
            ds.StudyDate, ds.SeriesNumber, ds.InstanceNumber = "20240102", s + 1, z + 1
            ds.ImageOrientationPatient = [1, 0, 0, 0, 1, 0]
            ds.ImagePositionPatient = [-100.0, -100.0, z * 2.5 + s * 100]
            ds.PixelSpacing, ds.SliceThickness = [0.8, 0.8], 2.5
            ds.RescaleIntercept, ds.RescaleSlope = -1024, 1
            ds.Rows = ds.Columns = size
            ds.SamplesPerPixel, ds.PhotometricInterpretation = 1, "MONOCHROME2"
            ds.BitsAllocated, ds.BitsStored, ds.HighBit, ds.PixelRepresentation = 16, 16, 15, 1
            pixels = (rng.normal(0, 40, (size, size)) + 1024 + 200 * np.sin(np.arange(size) / 6 + z)).astype(np.int16)
            ds.PixelData = pixels.tobytes()
            path = folder / f"{s}_{z:03d}.dcm"
            ds.save_as(path, enforce_file_format=True)
            out[series].append(path)
    return out


