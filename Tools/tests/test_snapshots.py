"""Signed snapshots, checked from outside with independent code: Tools/manifest_reference.py
(Python's json for the canonical form, hashlib for the Merkle root) and `cryptography` for the
Ed25519 signature."""
import json

import pydicom
import pytest
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey

from conftest import GATED, sha256_digest
from manifest_reference import b64url_decode, b64url_encode, canonical, entries_root
from node import Node


def verify_signature(document_bytes, public_key_text):
    """The document without its signature, once the Ed25519 signature over its canonical form has
    verified with `public_key_text`; raises InvalidSignature otherwise."""
    doc = json.loads(document_bytes)
    assert canonical(doc) == document_bytes, "served bytes are not canonical"
    signature = doc.pop("signature")
    assert signature["alg"] == "EdDSA"
    Ed25519PublicKey.from_public_bytes(b64url_decode(public_key_text)).verify(b64url_decode(signature["sig"]), canonical(doc))
    return doc


def check(document_bytes, public_key_text, state):
    """Verifies a snapshot as a hub would, applying its delta to `state` (digest -> entry)."""
    doc = verify_signature(document_bytes, public_key_text)
    for digest in doc["removed"]:
        del state[digest]
    for entry in doc["added"]:
        state[entry["digest"]] = entry
    assert doc["entries"] == len(state)
    assert doc["entries_root"] == entries_root(state.values())
    return doc


@pytest.fixture
def corpus(tmp_path):
    """A small generated de-identified corpus (3 subjects, CT and MR)."""
    import subprocess, sys
    from conftest import REPO
    out = tmp_path / "corpus"
    subprocess.run([sys.executable, str(REPO / "Tools/gen/make_corpus.py"), str(out), "--ct", "12", "--mr", "6",
                    "--dx", "1", "--jpeg", "2", "--seed", "11"], check=True, capture_output=True)
    return out


def test_publish_serve_verify_and_erase(store, corpus):
    store.run("dataset", "create", *GATED, "lung", "--title", "Lung CT", "--cancer-type", "lung")
    store.run("ingest", "--dataset", "lung", str(corpus))
    files = sorted(p for p in corpus.rglob("*") if p.is_file())
    public_key = store.run("key", "show").stdout.decode().strip()
    first = store.json("dataset", "publish", "lung", "--node-id", "node-a")
    assert first["seq"] == 1 and first["changed"] is True
    assert store.json("dataset", "publish", "lung")["changed"] is False

    node = Node(store, node_id="node-a")
    try:
        token = node.token(datasets="lung")
        r = node.get("/v1/datasets/lung/snapshots/latest", token)
        assert r.status_code == 200 and r.headers["ETag"] == f'"{first["digest"]}"'
        assert sha256_digest(r.content) == first["digest"]
        state = {}
        doc = check(r.content, public_key, state)
        assert doc["node"] == "node-a" and doc["seq"] == 1 and doc["parent"] is None
        assert doc["metadata"]["title"] == "Lung CT" and doc["metadata"]["cancer_type"] == "lung"
        # The summary agrees with pydicom reading the files.
        datasets = [pydicom.dcmread(p, stop_before_pixels=True) for p in files]
        assert doc["summary"]["subjects"] == len({d.PatientID for d in datasets})
        assert doc["summary"]["studies"] == len({d.StudyInstanceUID for d in datasets})
        assert doc["summary"]["instances"] == len(files)
        assert doc["summary"]["by_modality"] == {m: sum(d.Modality == m for d in datasets) for m in {d.Modality for d in datasets}}
        # Only allow-listed attributes, never names or dates.
        allowed = {"digest", "size", "subject", "study_uid", "series_uid", "sop_instance_uid", "modality", "body_part",
                   "manufacturer", "sex"}
        assert all(set(e) <= allowed for e in doc["added"])
        assert "PatientName" not in r.text and "BirthDate" not in r.text
        assert node.get("/v1/datasets/lung/snapshots/latest", token,
                        headers={"If-None-Match": r.headers["ETag"]}).status_code == 304
        # Erase one subject and publish: its entries leave the published state.
        subject = datasets[0].PatientID
        gone = {sha256_digest(p.read_bytes()) for p, d in zip(files, datasets) if d.PatientID == subject}
        store.run("dataset", "erase-subject", "lung", subject)
        second = store.json("dataset", "publish", "lung")
        assert second["seq"] == 2 and second["removed"] == len(gone)
        r2 = node.get("/v1/datasets/lung/snapshots/latest", token)
        doc2 = check(r2.content, public_key, state)
        assert doc2["parent"] == first["digest"] and set(doc2["removed"]) == gone
        assert not any(e.get("subject") == subject for e in state.values())
        # The signature check is real: the genuine document verifies, and a changed signed field,
        # a changed signature or another key each fail it (InvalidSignature, nothing else).
        genuine = json.loads(r2.content)
        assert verify_signature(canonical(genuine), public_key)["seq"] == 2
        altered = [dict(genuine, seq=genuine["seq"] + 1),
                   dict(genuine, removed=genuine["removed"][1:]),
                   dict(genuine, metadata=dict(genuine["metadata"], title="Lung CT (altered)"))]
        for forged in altered:
            with pytest.raises(InvalidSignature):
                verify_signature(canonical(forged), public_key)
        sig = bytearray(b64url_decode(genuine["signature"]["sig"]))
        sig[len(sig) // 2] ^= 0x01
        with pytest.raises(InvalidSignature):
            verify_signature(canonical(dict(genuine, signature=dict(genuine["signature"], sig=b64url_encode(bytes(sig))))),
                             public_key)
        stranger = b64url_encode(Ed25519PrivateKey.generate().public_key().public_bytes_raw())
        with pytest.raises(InvalidSignature):
            verify_signature(r2.content, stranger)
    finally:
        assert node.stop() == 0


def test_allow_list_is_per_dataset_and_refuses_unknown_attributes(store, corpus):
    proc = store.run("dataset", "create", *GATED, "x", "--publish-attributes", "modality,PatientName", check=False)
    assert proc.returncode == 2 and b"cannot be published" in proc.stderr
    store.run("dataset", "create", "mods", "--publish-attributes", "modality,rows", "--deid-policy", "accept")
    store.run("ingest", "--dataset", "mods", str(corpus))
    store.json("dataset", "publish", "mods", "--node-id", "test-node")
    node = Node(store)
    try:
        doc = node.get("/v1/datasets/mods/snapshots/latest", node.token(datasets="mods")).json()
        assert all(set(e) <= {"digest", "size", "modality", "rows"} for e in doc["added"])
        assert all("modality" in e for e in doc["added"])
    finally:
        assert node.stop() == 0
