"""Orthanc with its DICOMweb plugin, configured with the Cairn node as a remote DICOMweb server:
it searches Cairn and retrieves a study into its own storage, byte for byte."""
import hashlib

import pydicom

from conftest import GATED
from dicom_gen import write_ct_study
from node import Node
from orthanc import Orthanc


def test_orthanc_queries_cairn_and_retrieves_a_study_byte_identical(store, tmp_path):
    store.run("dataset", "create", *GATED, "ct")
    folder = tmp_path / "study"
    folder.mkdir()
    series = write_ct_study(folder, "SUBJ-ORTHANC-1", series_count=2, slices=5, size=96, seed=21)
    store.run("ingest", str(folder), "--dataset", "ct")
    originals = {hashlib.sha256(p.read_bytes()).hexdigest(): p for paths in series.values() for p in paths}
    study_uid = pydicom.dcmread(next(iter(originals.values()))).StudyInstanceUID
    node = Node(store)
    orthanc = None
    try:
        token = node.token("ct", subject="orthanc-peer")
        orthanc = Orthanc(tmp_path / "orthanc", servers={
            "cairn": {"Url": f"{node.url}/dicomweb/ct/", "HttpHeaders": {"Authorization": f"Bearer {token['token']}"}}})
        # QIDO-RS through Orthanc: the study, its two series, and a filter that matches nothing.
        studies = orthanc.post("/dicom-web/servers/cairn/qido", {"Uri": "/studies", "Arguments": {"PatientID": "SUBJ-ORTHANC-1"}}).json()
        # (Orthanc answers in its own simplified form: one "Value" string per tag.)
        assert [s["0020000D"]["Value"] for s in studies] == [study_uid]
        assert studies[0]["00100020"]["Value"] == "SUBJ-ORTHANC-1" and studies[0]["00080061"]["Value"] == "CT"
        found_series = orthanc.post("/dicom-web/servers/cairn/qido", {"Uri": f"/studies/{study_uid}/series"}).json()
        assert {s["0020000E"]["Value"] for s in found_series} == set(series)
        assert orthanc.post("/dicom-web/servers/cairn/qido", {"Uri": "/studies", "Arguments": {"PatientID": "NOBODY"}}).json() == []
        # WADO-RS: Orthanc retrieves the study into its own storage.
        orthanc.post("/dicom-web/servers/cairn/retrieve", {"Resources": [{"Study": study_uid}]})
        instances = orthanc.get("/instances").json()
        assert len(instances) == 10
        stored = {hashlib.sha256(orthanc.get(f"/instances/{i}/file").content).hexdigest() for i in instances}
        assert stored == set(originals), "Orthanc's copies are the original files, byte for byte"
        # Orthanc reads Cairn's series metadata through its own DICOMweb server too (a viewer's path).
        uid = next(iter(series))
        metadata = orthanc.get(f"/dicom-web/studies/{study_uid}/series/{uid}/metadata").json()
        assert len(metadata) == 5
    finally:
        if orthanc:
            orthanc.stop()
        node.stop()
