"""DICOMweb (QIDO-RS, WADO-RS, STOW-RS) at /dicomweb/{dataset}, driven by dicomweb-client and
requests; every answer is checked against pydicom's reading of the original files."""
import fnmatch
import hashlib
import io
import json
import socket
import threading
from pathlib import Path

import pydicom
import pytest
import requests
from dicomweb_client.api import DICOMwebClient
from pydicom.encaps import generate_frames

from conftest import GATED, wait_until
from dicom_gen import write_ct_study
from node import Node, proc_status_bytes


def client(node, token, dataset="ct"):
    return DICOMwebClient(url=f"{node.url}/dicomweb/{dataset}", headers=node.headers(token))


def multipart_parts(response):
    """The bodies of a multipart/related response, split on its boundary."""
    content_type = response.headers["Content-Type"]
    assert content_type.startswith("multipart/related"), content_type
    boundary = content_type.split("boundary=")[1].split(";")[0].strip('"').encode()
    body = response.content
    assert body.startswith(b"--" + boundary + b"\r\n") and body.endswith(b"\r\n--" + boundary + b"--\r\n")
    parts = []
    for chunk in body[:-len(b"\r\n--" + boundary + b"--\r\n")].split(b"\r\n--" + boundary + b"\r\n"):
        chunk = chunk.removeprefix(b"--" + boundary + b"\r\n")
        head, _, content = chunk.partition(b"\r\n\r\n")
        headers = dict(line.split(": ", 1) for line in head.decode().split("\r\n"))
        assert int(headers["Content-Length"]) == len(content)
        parts.append((headers, content))
    return parts


@pytest.fixture
def web(store, dicom_files, tmp_path):
    """Dataset `ct`: every pydicom test file (policy accept) and a generated two-series CT study;
    dataset `other`: one more study. Returns the node, a read token and the originals by digest."""
    store.run("dataset", "create", "ct", "--deid-policy", "accept")
    store.run("dataset", "create", "other", "--deid-policy", "accept")
    generated = tmp_path / "generated"
    generated.mkdir()
    series = write_ct_study(generated, "SUBJ-DW-1", series_count=2, slices=6)
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    other_series = write_ct_study(elsewhere, "SUBJ-OTHER", series_count=1, slices=2, seed=5)
    store.run("ingest", *map(str, dicom_files), "--dataset", "ct", check=False)
    store.run("ingest", str(generated), "--dataset", "ct")
    store.run("ingest", str(elsewhere), "--dataset", "other")
    originals = {}
    for path in list(dicom_files) + [p for paths in series.values() for p in paths]:
        originals.setdefault("sha256:" + hashlib.sha256(path.read_bytes()).hexdigest(), path)
    # DICOMweb addresses instances by study, series and SOP instance UID: those with all three.
    instances = {e["digest"]: e["dicom"] for e in store.ndjson("ls", "--dataset", "ct")
                 if all(key in e.get("dicom", {}) for key in ("study_uid", "series_uid", "sop_uid"))}
    node = Node(store)
    try:
        yield {"node": node, "token": node.token("ct"), "originals": originals, "instances": instances,
               "series": series, "other_series": other_series, "store": store, "tmp": tmp_path}
    finally:
        node.stop()


def read(path):
    return pydicom.dcmread(path, force=True)


def test_qido_searches_answer_what_pydicom_reads_in_the_originals(web):
    c = client(web["node"], web["token"])
    # pydicom's test data holds the same instance in several encodings: one stored instance per file.
    files = [read(web["originals"][digest]) for digest in web["instances"]]
    expected = {ds.SOPInstanceUID: ds for ds in files}
    studies = c.search_for_studies(get_remaining=True)
    assert {s["0020000D"]["Value"][0] for s in studies} == {ds.StudyInstanceUID for ds in files}
    # Counts per study equal what the originals hold.
    for study in studies:
        uid = study["0020000D"]["Value"][0]
        members = [ds for ds in files if ds.StudyInstanceUID == uid]
        assert study["00201208"]["Value"] == [len(members)]
        assert study["00201206"]["Value"] == [len({ds.SeriesInstanceUID for ds in members})]
    instances = c.search_for_instances(get_remaining=True)
    assert sorted(i["00080018"]["Value"][0] for i in instances) == sorted(ds.SOPInstanceUID for ds in files)
    for found in instances:
        ds = expected[found["00080018"]["Value"][0]]
        for keyword in ("PatientID", "StudyDate", "Modality", "SeriesInstanceUID", "SOPClassUID", "Rows", "Columns"):
            if keyword in ds and ds[keyword].value not in (None, ""):
                tag = f"{pydicom.datadict.tag_for_keyword(keyword):08X}"
                assert found[tag]["Value"] == [ds[keyword].value], keyword

    # Filters: PatientID with a wildcard, Modality, StudyDate ranges, nested under a study/series.
    generated = [read(p) for paths in web["series"].values() for p in paths]
    study_uid = generated[0].StudyInstanceUID
    found = c.search_for_studies(search_filters={"PatientID": "SUBJ-DW-?"})
    assert [s["0020000D"]["Value"][0] for s in found] == [study_uid]
    assert c.search_for_studies(search_filters={"PatientID": "subj-dw-1"}) == []  # matching is case-sensitive
    described = {ds.StudyInstanceUID for ds in files if fnmatch.fnmatchcase(str(ds.get("StudyDescription", "")), "*liver*")}
    assert described, "pydicom's data has a study described with 'liver'"
    found = c.search_for_studies(search_filters={"StudyDescription": "*liver*"})
    assert {s["0020000D"]["Value"][0] for s in found} == described
    ct_series = c.search_for_series(search_filters={"Modality": "CT"}, get_remaining=True)
    assert {s["0020000E"]["Value"][0] for s in ct_series} == {ds.SeriesInstanceUID for ds in expected.values()
                                                             if ds.get("Modality") == "CT"}
    in_range = c.search_for_instances(search_filters={"StudyDate": "20240101-20240131", "Modality": "CT"}, get_remaining=True)
    assert {i["00080018"]["Value"][0] for i in in_range} == {ds.SOPInstanceUID for ds in expected.values()
                                                             if ds.get("Modality") == "CT" and "20240101" <= ds.get("StudyDate", "") <= "20240131"}
    assert len(in_range) == 12
    assert c.search_for_instances(search_filters={"StudyDate": "-20231231", "PatientID": "SUBJ-DW-1"}) == []
    series_uid = generated[0].SeriesInstanceUID
    nested = c.search_for_instances(study_instance_uid=study_uid, series_instance_uid=series_uid)
    assert sorted(i["00200013"]["Value"][0] for i in nested) == list(range(1, 7))
    series_of_study = c.search_for_series(study_instance_uid=study_uid)
    assert sorted(s["00200011"]["Value"][0] for s in series_of_study) == [1, 2]
    assert all(s["00201209"]["Value"] == [6] for s in series_of_study)
    # limit/offset page through without overlap, in a stable order; a page that is not the last says so.
    pages = [c.search_for_instances(limit=7, offset=o) for o in range(0, 21, 7)]
    uids = [i["00080018"]["Value"][0] for page in pages for i in page]
    # (pydicom's files repeat some SOP Instance UIDs, so the check is against one page of 21.)
    assert len(uids) == 21 and [i["00080018"]["Value"][0] for i in c.search_for_instances(limit=21)] == uids
    response = web["node"].get("/dicomweb/ct/instances?limit=5", web["token"])
    assert "additional results" in response.headers["Warning"]
    last = web["node"].get(f"/dicomweb/ct/instances?limit=5&offset={len(instances) - 3}", web["token"])
    assert len(last.json()) == 3 and "Warning" not in last.headers
    # The other dataset's study is not found here, and is there.
    other_study = read(next(iter(web["other_series"].values()))[0]).StudyInstanceUID
    assert c.search_for_studies(search_filters={"StudyInstanceUID": other_study}) == []
    other = client(web["node"], web["node"].token("other"), "other")
    assert len(other.search_for_studies(search_filters={"StudyInstanceUID": other_study})) == 1


def test_retrieved_instances_are_the_original_bytes(web):
    node, token = web["node"], web["token"]
    c = client(node, token)
    generated = [read(p) for paths in web["series"].values() for p in paths]
    study_uid = generated[0].StudyInstanceUID
    by_sop = {read(p).SOPInstanceUID: p for paths in web["series"].values() for p in paths}
    # dicomweb-client: a whole study and one instance, as pydicom data sets equal to the originals.
    retrieved = c.retrieve_study(study_uid)
    assert len(retrieved) == 12
    for ds in retrieved:
        assert ds == read(by_sop[ds.SOPInstanceUID])
    one = generated[3]
    assert c.retrieve_instance(study_uid, one.SeriesInstanceUID, one.SOPInstanceUID) == read(by_sop[one.SOPInstanceUID])
    # requests: every part of every study of the dataset is byte for byte an original file.
    digests = set(web["instances"])
    studies = {attrs["study_uid"] for attrs in web["instances"].values()}
    seen = set()
    for study in studies:
        response = node.get(f"/dicomweb/ct/studies/{study}", token,
                            headers={"Accept": 'multipart/related; type="application/dicom"; transfer-syntax=*'})
        assert response.status_code == 200, response.text
        assert int(response.headers["Content-Length"]) == len(response.content)
        for headers, content in multipart_parts(response):
            digest = "sha256:" + hashlib.sha256(content).hexdigest()
            assert digest in digests
            assert headers["Content-Type"].startswith("application/dicom; transfer-syntax=")
            seen.add(digest)
    assert seen == digests
    # Conditional requests on the same resource.
    path = f"/dicomweb/ct/studies/{study_uid}"
    first = node.get(path, token)
    again = node.get(path, token, headers={"If-None-Match": first.headers["ETag"]})
    assert again.status_code == 304 and again.content == b""


def test_metadata_and_bulk_data_equal_pydicom_reading_of_the_originals(web):
    node, token = web["node"], web["token"]
    c = client(node, token)
    generated = {read(p).SOPInstanceUID: read(p) for paths in web["series"].values() for p in paths}
    any_ds = next(iter(generated.values()))
    metadata = c.retrieve_series_metadata(any_ds.StudyInstanceUID, any_ds.SeriesInstanceUID)
    assert len(metadata) == 6

    def fetch(tag, vr, uri):
        return b"".join(c.retrieve_bulkdata(uri))

    for item in metadata:
        parsed = pydicom.Dataset.from_json(item, bulk_data_uri_handler=fetch)
        original = generated[parsed.SOPInstanceUID]
        assert parsed == original  # every element, Pixel Data (fetched by its BulkDataURI) included
        assert "7FE00010" in item and "BulkDataURI" in item["7FE00010"]
    # Every instance of the dataset: the metadata names the same top-level elements as pydicom
    # reads, with the same values for the text VRs.
    for digest, attrs in web["instances"].items():
        original = read(web["originals"][digest])
        response = node.get(f"/dicomweb/ct/studies/{attrs['study_uid']}/series/{attrs['series_uid']}"
                            f"/instances/{attrs['sop_uid']}/metadata", token)
        assert response.status_code == 200, (digest, response.text)
        # Several files of pydicom's data hold the same instance: the one URL answers them all.
        assert any(metadata_matches(item, original) for item in response.json()), web["originals"][digest]
    # A byte range of a bulk data value.
    pixel_uri = metadata[0]["7FE00010"]["BulkDataURI"]
    pixels = generated[metadata[0]["00080018"]["Value"][0]].PixelData
    part = b"".join(c.retrieve_bulkdata(pixel_uri, byte_range=(100, 1099)))
    assert part == pixels[100:1100]


def metadata_matches(item, original):
    """The item names the top-level elements pydicom reads, with the same single text values."""
    tags = {f"{e.tag:08X}" for e in original if e.tag.element != 0}
    if original.file_meta.get("TransferSyntaxUID") == "1.2.840.10008.1.2.1.99":
        # A deflated data set has no file offsets to point BulkDataURIs at: its bulk data is left out.
        if not (set(item) <= tags and "7FE00010" not in item):
            return False
    elif set(item) != tags:
        return False
    for element in original:
        if element.VR in ("UI", "CS", "DA", "TM", "SH") and element.VM == 1 and element.value not in (None, ""):
            if item[f"{element.tag:08X}"].get("Value") != [element.value]:
                return False
    return True


def test_frames_are_cut_from_the_stored_blob(web, dicom_files):
    node, token = web["node"], web["token"]
    c = client(node, token)
    by_name = {p.name: p for p in dicom_files}
    # Native multi-frame: 10 frames of 48x40 16-bit, stored through STOW-free ingest.
    native = read(next(iter(web["series"].values()))[0])
    native.SOPInstanceUID = native.file_meta.MediaStorageSOPInstanceUID = pydicom.uid.generate_uid()
    native.Rows, native.Columns, native.NumberOfFrames = 48, 40, 10
    native.PixelData = bytes(range(256)) * (48 * 40 * 2 * 10 // 256)
    path = web["tmp"] / "multiframe.dcm"
    native.save_as(path, enforce_file_format=True)
    web["store"].run("ingest", str(path), "--dataset", "ct")
    frame_size = native.Rows * native.Columns * native.BitsAllocated // 8
    frames = c.retrieve_instance_frames(native.StudyInstanceUID, native.SeriesInstanceUID, native.SOPInstanceUID, [1, 3, 10])
    assert frames == [native.PixelData[(n - 1) * frame_size:n * frame_size] for n in (1, 3, 10)]
    # Encapsulated (RLE, JPEG 2000, JPEG-LS): each frame's fragments, as stored, in the stored media
    # type. pydicom's files share SOP Instance UIDs (one instance, several encodings), so each goes
    # to a dataset of its own; in one dataset their frames are an ambiguous request (409).
    ambiguous = by_name["SC_rgb_rle_2frame.dcm"]
    ds = read(ambiguous)
    assert node.get(f"/dicomweb/ct/studies/{ds.StudyInstanceUID}/series/{ds.SeriesInstanceUID}"
                    f"/instances/{ds.SOPInstanceUID}/frames/1", token).status_code == 409
    for name, media_type in [("SC_rgb_rle_2frame.dcm", "image/dicom-rle"), ("MR_small_jp2klossless.dcm", "image/jp2"),
                             ("MR_small_jpeg_ls_lossless.dcm", "image/jls")]:
        ds = read(by_name[name])
        dataset = name.split(".")[0].lower().replace("_", "-")
        web["store"].run("dataset", "create", dataset, "--deid-policy", "accept")
        web["store"].run("ingest", str(by_name[name]), "--dataset", dataset)
        token = node.token(dataset)
        c = client(node, token, dataset)
        expected = list(generate_frames(ds.PixelData, number_of_frames=int(ds.get("NumberOfFrames", 1))))
        wanted = list(range(1, len(expected) + 1))
        got = c.retrieve_instance_frames(ds.StudyInstanceUID, ds.SeriesInstanceUID, ds.SOPInstanceUID, wanted)
        assert got == expected, name
        response = node.get(f"/dicomweb/{dataset}/studies/{ds.StudyInstanceUID}/series/{ds.SeriesInstanceUID}"
                            f"/instances/{ds.SOPInstanceUID}/frames/1", token,
                            headers={"Accept": "multipart/related; type=\"application/octet-stream\""})
        assert response.status_code == 406 and "transfer-syntax=*" in response.json()["detail"]
        response = node.get(response.request.path_url, token,
                            headers={"Accept": "multipart/related; type=\"application/octet-stream\"; transfer-syntax=*"})
        assert response.status_code == 200
        [(headers, content)] = multipart_parts(response)
        assert content == expected[0] and headers["Content-Type"].startswith("application/octet-stream; transfer-syntax=")
        response = node.get(response.request.path_url, token, headers={"Accept": f'multipart/related; type="{media_type}"'})
        assert response.status_code == 200 and multipart_parts(response)[0][0]["Content-Type"].startswith(media_type)


def test_stow_stores_through_the_gate_and_reports_per_instance(web):
    node, store, tmp = web["node"], web["store"], web["tmp"]
    store.run("dataset", "create", *GATED, "gated")
    ingest = node.token("ct,gated", scope="ingest")
    folder = tmp / "stow"
    folder.mkdir()
    series = write_ct_study(folder, "SUBJ-STOW-1", series_count=1, slices=4, seed=9)
    datasets = [read(p) for paths in series.values() for p in paths]
    writer = client(node, ingest)
    response = writer.store_instances(datasets)
    assert len(response.ReferencedSOPSequence) == 4 and "FailedSOPSequence" not in response
    assert {item.ReferencedSOPInstanceUID for item in response.ReferencedSOPSequence} == {ds.SOPInstanceUID for ds in datasets}
    reader = client(node, web["token"])
    found = reader.search_for_instances(search_filters={"PatientID": "SUBJ-STOW-1"})
    assert len(found) == 4
    back = reader.retrieve_study(datasets[0].StudyInstanceUID)
    assert sorted(back, key=lambda d: d.InstanceNumber) == sorted(datasets, key=lambda d: d.InstanceNumber)
    # Storing the same again is harmless (dedup) and says so with 200.
    assert len(writer.store_instances(datasets).ReferencedSOPSequence) == 4
    # The gated dataset refuses an identifiable instance (409, reason 0x0124) and takes a clean one (202 when mixed).
    identifiable = read(next(iter(series.values()))[0])
    identifiable.PatientName = "Smith^John"
    identifiable.PatientBirthDate = "19601231"
    del identifiable.PatientIdentityRemoved
    identifiable.SOPInstanceUID = identifiable.file_meta.MediaStorageSOPInstanceUID = pydicom.uid.generate_uid()
    gated = client(node, ingest, "gated")
    with pytest.raises(requests.HTTPError) as refused:
        gated.store_instances([identifiable])
    assert refused.value.response.status_code == 409
    body = pydicom.Dataset.from_json(refused.value.response.json())
    assert body.FailedSOPSequence[0].FailureReason == 0x0124
    assert body.FailedSOPSequence[0].ReferencedSOPInstanceUID == identifiable.SOPInstanceUID
    clean = datasets[1]
    mixed = requests.post(f"{node.url}/dicomweb/gated/studies", data=multipart_body([identifiable, clean], b"mixb"),
                          headers=node.headers(ingest, **{"Content-Type": 'multipart/related; type="application/dicom"; boundary=mixb'}))
    assert mixed.status_code == 202, mixed.text
    body = pydicom.Dataset.from_json(mixed.json())
    assert [i.ReferencedSOPInstanceUID for i in body.ReferencedSOPSequence] == [clean.SOPInstanceUID]
    assert [i.ReferencedSOPInstanceUID for i in body.FailedSOPSequence] == [identifiable.SOPInstanceUID]
    assert reader.search_for_instances(search_filters={"SOPInstanceUID": identifiable.SOPInstanceUID}) == []
    # A study in the path that the instance is not in: refused with 0xA900.
    wrong = requests.post(f"{node.url}/dicomweb/ct/studies/1.2.3.4", data=multipart_body([clean], b"b1"),
                          headers=node.headers(ingest, **{"Content-Type": 'multipart/related; type="application/dicom"; boundary=b1'}))
    assert wrong.status_code == 409
    assert pydicom.Dataset.from_json(wrong.json()).FailedSOPSequence[0].FailureReason == 0xA900
    # Other bytes under a SOP Instance UID the dataset holds: refused as a duplicate (0x0111);
    # a part that is not application/dicom: refused (0xC000).
    changed = read(next(iter(series.values()))[0])
    changed.SeriesDescription = "changed"
    duplicate = requests.post(f"{node.url}/dicomweb/ct/studies", data=multipart_body([changed], b"b3"),
                              headers=node.headers(ingest, **{"Content-Type": 'multipart/related; type="application/dicom"; boundary=b3'}))
    assert duplicate.status_code == 409
    assert pydicom.Dataset.from_json(duplicate.json()).FailedSOPSequence[0].FailureReason == 0x0111
    json_part = (b'--b4\r\nContent-Type: application/dicom+json\r\n\r\n[{}]\r\n--b4--\r\n')
    typed = requests.post(f"{node.url}/dicomweb/ct/studies", data=json_part,
                          headers=node.headers(ingest, **{"Content-Type": 'multipart/related; type="application/dicom"; boundary=b4'}))
    assert typed.status_code == 409
    assert pydicom.Dataset.from_json(typed.json()).FailedSOPSequence[0].FailureReason == 0xC000
    # A read token cannot store.
    assert requests.post(f"{node.url}/dicomweb/ct/studies", data=multipart_body([clean], b"b2"),
                         headers=node.headers(web["token"], **{"Content-Type": 'multipart/related; type="application/dicom"; boundary=b2'})
                         ).status_code == 403


def multipart_body(datasets, boundary):
    body = b""
    for ds in datasets:
        buffer = io.BytesIO()
        ds.save_as(buffer, enforce_file_format=True)
        body += b"--" + boundary + b"\r\nContent-Type: application/dicom\r\n\r\n" + buffer.getvalue() + b"\r\n"
    return body + b"--" + boundary + b"--\r\n"


def test_stow_body_cut_off_midway_stores_only_complete_parts(web):
    node, tmp = web["node"], web["tmp"]
    ingest = node.token("ct", scope="ingest")
    folder = tmp / "cut"
    folder.mkdir()
    datasets = [read(p) for paths in write_ct_study(folder, "SUBJ-CUT", series_count=1, slices=2, seed=11).values() for p in paths]
    body = multipart_body(datasets, b"cutb")
    cut = body[:len(body) - 3000]  # the second instance is cut off inside its pixel data
    head = (f"POST /dicomweb/ct/studies HTTP/1.1\r\nHost: 127.0.0.1\r\nAuthorization: Bearer {ingest['token']}\r\n"
            f"Content-Type: multipart/related; type=\"application/dicom\"; boundary=cutb\r\nContent-Length: {len(body)}\r\n\r\n")
    with socket.create_connection(("127.0.0.1", node.port)) as s:
        s.sendall(head.encode() + cut)
        s.shutdown(socket.SHUT_WR)
        s.settimeout(10)
        while s.recv(65536):
            pass
    reader = client(node, web["token"])
    wait_until(lambda: len(reader.search_for_instances(search_filters={"PatientID": "SUBJ-CUT"})) == 1, 10,
               "the complete first part to be stored")
    [found] = reader.search_for_instances(search_filters={"PatientID": "SUBJ-CUT"})
    assert found["00080018"]["Value"] == [datasets[0].SOPInstanceUID]
    wait_until(lambda: not list((web["store"].root / "tmp").glob("upload-*")), 10, "the cut-off part's spool file to go")


BAD_REQUESTS = [
    ("/studies/1.2.x", {}, 400, "not a UID"),
    ("/studies?NotAKey=1", {}, 400, "unknown query key"),
    ("/studies?PatientAge=040Y", {}, 400, "not supported"),
    ("/studies?StudyDate=2024-13-01", {}, 400, "not a value or range"),
    ("/studies?limit=0", {}, 400, "limit"),
    ("/studies?ScheduledProcedureStepSequence.Modality=CT", {}, 400, "inside sequences"),
    ("/studies", {"Accept": "application/dicom+xml"}, 406, "XML"),
    ("/studies/{study}/rendered", {}, 501, "not provided"),
    ("/studies/{study}/series/{series}/instances/{sop}/frames/7", {}, 400, "out of range"),
    ("/studies/{study}/series/{series}/instances/{sop}/frames/1,x", {}, 400, "frame list"),
    ("/studies/{study}/series/{series}/instances/{sop}/frames/1,1", {}, 400, "twice"),
    ("/studies/{study}", {"Accept": 'multipart/related; type="application/dicom"; transfer-syntax=1.2.840.10008.1.2.4.50'},
     406, "does not transcode"),
    ("/studies/{study}/series/{series}/instances/{sop}/metadata", {"Accept": "application/dicom+xml"}, 406, "XML"),
    ("/studies/{study}/series/{series}/instances/{sop}/bulkdata/{blob}/10-99999999", {}, 404, "no bulk data"),
    ("/studies/{study}/series/{series}/instances/{sop}/bulkdata/{wrongblob}/10-10", {}, 404, "no bulk data"),
    ("/studies/1.2.3.4.5", {}, 404, "has no study"),
]


def test_bad_requests_get_clear_errors(web):
    first = next(iter(web["series"].values()))[0]
    ds = read(first)
    for path, headers, status, words in BAD_REQUESTS:
        path = path.format(study=ds.StudyInstanceUID, series=ds.SeriesInstanceUID, sop=ds.SOPInstanceUID,
                           blob=hashlib.sha256(first.read_bytes()).hexdigest(), wrongblob="ab" * 32)
        response = web["node"].get("/dicomweb/ct" + path, web["token"], headers=headers)
        assert response.status_code == status, (path, response.text)
        assert words in response.json()["detail"], path


@pytest.mark.local_files
def test_reindex_fills_in_rows_indexed_before_dicomweb(web):
    """Rows as index v8 left them (no v9 columns): searches answer from the older columns and warn
    on the newer keys; `cairn reindex` reads the headers again and the answers become whole."""
    node, store = web["node"], web["store"]
    ds = read(next(iter(web["series"].values()))[0])
    query = f"/dicomweb/ct/instances?PatientID=SUBJ-DW-1&SeriesNumber=1"
    before = node.get(query, web["token"])
    assert len(before.json()) == 6 and "Warning" not in before.headers
    store.index_sql("UPDATE instances SET patient_name = NULL, accession_number = NULL, study_id = NULL, study_time = NULL, "
                    "series_number = NULL, instance_number = NULL, study_attributes = NULL, series_attributes = NULL, "
                    "instance_attributes = NULL, frame_length = NULL WHERE dataset_id = 'ct'")
    stale = node.get(query, web["token"])
    assert stale.json() == [] and "cairn reindex" in stale.headers["Warning"]
    [study] = node.get(f"/dicomweb/ct/studies?StudyInstanceUID={ds.StudyInstanceUID}", web["token"]).json()
    assert study["00100020"]["Value"] == ["SUBJ-DW-1"] and "00080030" not in study  # the older columns only
    # A blob that cannot be read is skipped, reported, and left to reindex once it is repaired.
    first = next(iter(web["series"].values()))[0]
    lost = "sha256:" + hashlib.sha256(first.read_bytes()).hexdigest()
    Path(store.path(lost)).unlink()
    partial = store.run("reindex", "--dataset", "ct", "--json", check=False)
    report = json.loads(partial.stdout)
    assert partial.returncode == 1 and report["skipped"] == 1
    instances = sum(1 for e in store.ndjson("ls", "--dataset", "ct") if "dicom" in e)
    assert report["reindexed"] + report["unreadable"] + report["skipped"] == instances
    store.run("ingest", str(first), "--dataset", "ct")  # repairs the blob (and writes its row anew)
    after = node.get(query, web["token"])
    assert "Warning" not in after.headers
    key = lambda item: item["00080018"]["Value"][0]
    assert sorted(after.json(), key=key) == sorted(before.json(), key=key)
    assert json.loads(store.run("reindex", "--json").stdout)["reindexed"] == 0  # nothing left to do


def test_hostile_pixel_geometry_gets_an_error_not_a_crash(web):
    """Rows, Columns, SamplesPerPixel and BitsAllocated whose product overflows, and a Number of
    Frames near Int64.max: ingest stores the files, and frame requests answer with an error."""
    node, store, tmp = web["node"], web["store"], web["tmp"]
    base = read(next(iter(web["series"].values()))[0])
    cases = []
    for index, (rows, columns, samples, bits, frames) in enumerate([(65535, 65535, 65535, 65535, "1"),
                                                                     (4, 4, 1, 16, "9223372036854775807"),
                                                                     (4, 4, 1, 12, "3")]):
        ds = base.copy()
        ds.SOPInstanceUID = ds.file_meta.MediaStorageSOPInstanceUID = pydicom.uid.generate_uid()
        ds.Rows, ds.Columns, ds.SamplesPerPixel, ds.BitsAllocated, ds.NumberOfFrames = rows, columns, samples, bits, frames
        ds.PixelData = b"\x00" * 64
        path = tmp / f"hostile-{index}.dcm"
        ds.save_as(path, enforce_file_format=True)
        cases.append(ds)
    store.run("ingest", *[str(tmp / f"hostile-{i}.dcm") for i in range(3)], "--dataset", "ct")
    for ds in cases:
        response = node.get(f"/dicomweb/ct/studies/{ds.StudyInstanceUID}/series/{ds.SeriesInstanceUID}"
                            f"/instances/{ds.SOPInstanceUID}/frames/1", web["token"])
        assert response.status_code in (500, 501), response.text
        assert response.json()["error"] in ("damaged", "not_implemented")
    assert node.get("/healthz").status_code == 200


def test_tokens_scope_dicomweb_like_blobs(web):
    node = web["node"]
    ds = read(next(iter(web["other_series"].values()))[0])
    assert node.get("/dicomweb/ct/studies").status_code == 401
    assert node.get("/dicomweb/other/studies", web["token"]).status_code == 403
    # The other dataset's study through this dataset's root: not found.
    assert node.get(f"/dicomweb/ct/studies/{ds.StudyInstanceUID}", web["token"]).status_code == 404
    assert node.get(f"/dicomweb/other/studies/{ds.StudyInstanceUID}", node.token("other")).status_code == 200
    # Every read and every refusal reaches the audit chain (written in batches: poll for it).
    def audited():
        records = web["store"].ndjson("audit", "export")
        return (any(a["action"] == "dicomweb.retrieve" and a["status"] == 200 and a["dataset"] == "other" for a in records)
                and any(a["action"] == "deny" and a.get("status") == 403 for a in records))
    wait_until(audited, 10, "the retrieve and the refusal to be audited")


def test_a_large_series_to_ten_clients_at_once_stays_within_bounded_memory(store, tmp_path):
    store.run("dataset", "create", "big", "--deid-policy", "accept")
    folder = tmp_path / "big"
    folder.mkdir()
    series = write_ct_study(folder, "SUBJ-BIG", series_count=1, slices=1000, size=128, seed=4)
    store.run("ingest", str(folder), "--dataset", "big", "--jobs", "2")
    [(series_uid, paths)] = series.items()
    ds = read(paths[0])
    total = sum(p.stat().st_size for p in paths)
    node = Node(store)
    try:
        token = node.token("big")
        errors = []

        def fetch():
            try:
                with requests.get(f"{node.url}/dicomweb/big/studies/{ds.StudyInstanceUID}/series/{series_uid}",
                                  headers=node.headers(token), stream=True, timeout=120) as r:
                    assert r.status_code == 200
                    assert sum(len(b) for b in r.iter_content(1 << 16)) > total
            except Exception as error:  # noqa: BLE001 - reported below
                errors.append(error)

        threads = [threading.Thread(target=fetch) for _ in range(10)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        assert not errors, errors
        peak = proc_status_bytes(node.proc.pid, "VmHWM")
        print(f"10 clients x {len(paths)} instances ({total / 1e6:.0f} MB each): node peak RSS {peak / 1e6:.0f} MB")
        assert peak < 300e6
        metadata = requests.get(f"{node.url}/dicomweb/big/studies/{ds.StudyInstanceUID}/series/{series_uid}/metadata",
                                headers=node.headers(token), timeout=60).json()
        assert len(metadata) == 1000
    finally:
        node.stop()
