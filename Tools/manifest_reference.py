"""Cairn's manifest formats written again in Python, independently of the Swift code, for the
acceptance tests and the federation benchmark: canonical JSON, the RFC 6962-style entries root,
base64url without padding."""
import base64
import hashlib
import json


def canonical(value):
    return json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode()


def leaf_hash(canonical_entry):
    return hashlib.sha256(b"\x00" + canonical_entry).digest()


def merkle_root(leaves):
    """The root over leaf hashes already in digest order: pairs hashed with 0x01, an odd node carried up."""
    level = leaves
    if not level:
        return hashlib.sha256(b"").hexdigest()
    while len(level) > 1:
        paired = [hashlib.sha256(b"\x01" + level[i] + level[i + 1]).digest() for i in range(0, len(level) - 1, 2)]
        level = paired + ([level[-1]] if len(level) % 2 else [])
    return level[0].hex()


def entries_root(entries):
    return merkle_root([leaf_hash(canonical(e)) for e in sorted(entries, key=lambda e: e["digest"])])


def b64url_encode(data):
    return base64.urlsafe_b64encode(data).decode().rstrip("=")


def b64url_decode(text):
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def push_headers(key, node, dataset, digest, body, timestamp=None, length=None, **extra):
    """The `Cairn-Push` header a node sends with a snapshot: its Ed25519 key (a `cryptography`
    private key) over `cairn-push/v1`, node, dataset, digest, time and body length (`length`, when
    a test declares another), one per line."""
    import time
    t = int(time.time()) if timestamp is None else timestamp
    message = f"cairn-push/v1\n{node}\n{dataset}\n{digest}\n{t}\n{len(body) if length is None else length}".encode()
    return {"Cairn-Push": f"t={t};sig={b64url_encode(key.sign(message))}", **extra}
