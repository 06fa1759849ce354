"""Check an Accord proof bundle without Accord: the Python standard library and `cryptography` only.

    python verifier.py BUNDLE.json [--key BASE64_PUBLIC_KEY]

This file stands alone: copy it anywhere. The bundle's format is in docs/PROOF.md. Each entry's
personal fields (number, event, state, texts, message ids) are bound to it by a salted SHA-1
commitment; the entry is bound to the ledger's order by its chain hash, and to the tree the
checkpoint fixes by its SHA-256 leaf and inclusion proof (RFC 6962); the checkpoint is bound to
the campaign by its Ed25519 signature. A text Accord sent may be named by reference ("=" and the
first 32 hex digits of its SHA-256): the bundle's "texts" give the words, checked against it.
Give `--key` the public key the campaign published, or the bundle's own key is used and printed
so you can compare it with theirs.
"""

from __future__ import annotations

import base64
import hashlib
import json
import sys

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

PERSONAL = ("phone", "event", "state", "text", "sid", "reply")  # committed to, in this order
CHAINED = ("at", "flow", "flow_hash", "kind", "pid", "commit", "prev")  # chain-hashed, in this order
LEAF = ("at", "flow", "flow_hash", "kind", "pid", "commit", "prev", "hash")  # after the entry id
CHECKPOINT = ("flow", "size", "last", "head", "root", "frontier", "at", "previous", "format")


def lp(values: list[bytes]) -> bytes:
    """Length-prefix each value ("3:oui") and join: no value can shift into another."""
    return b"".join(b"%d:%s" % (len(value), value) for value in values)


def text(value: object) -> bytes:
    return str(value).encode("utf-8", "surrogateescape")


def included(leaf: bytes, index: int, size: int, path: list[bytes], root: bytes) -> bool:
    """RFC 9162 section 2.1.3.2: does `path` lead from leaf `index` of a tree of `size` to `root`?"""
    if not 0 <= index < size:
        return False
    node, last, found = index, size - 1, leaf
    for sibling in path:
        if last == 0:
            return False
        if node & 1 or node == last:
            found = hashlib.sha256(b"\x01" + sibling + found).digest()
            while not node & 1 and node:
                node, last = node >> 1, last >> 1
        else:
            found = hashlib.sha256(b"\x01" + found + sibling).digest()
        node, last = node >> 1, last >> 1
    return last == 0 and found == root


def problems(bundle: dict, trusted_key: str | None = None) -> list[str]:
    """Return what does not hold in the bundle; an empty list means every check passed."""
    found = []
    checkpoint = bundle.get("checkpoint") or {}
    if sorted(checkpoint) != sorted(CHECKPOINT):
        return ["the checkpoint does not have the expected fields"]
    key = trusted_key or bundle.get("key", "")
    if trusted_key and trusted_key != bundle.get("key"):
        found.append("the bundle is signed by another key than the one given")
    body = json.dumps(checkpoint, sort_keys=True, separators=(",", ":"), ensure_ascii=True).encode()
    try:
        Ed25519PublicKey.from_public_bytes(base64.b64decode(key)).verify(base64.b64decode(bundle["signature"]), body)
    except (InvalidSignature, ValueError, KeyError):
        found.append("the checkpoint's signature does not hold")
    if checkpoint["flow"] != bundle.get("flow"):
        found.append(f"the checkpoint is of flow {checkpoint['flow']!r}, not {bundle.get('flow')!r}")
    root = bytes.fromhex(checkpoint["root"])
    for entry in bundle.get("entries", []):
        name, stream, personal = entry.get("id", "?"), entry.get("stream", {}), entry.get("personal", {})
        commit = hashlib.sha1(text(personal.get("salt", "")) + lp([text(personal.get(k, "")) for k in PERSONAL]))
        if commit.hexdigest() != stream.get("commit"):
            found.append(f"entry {name}: its personal fields are not the ones committed to")
        chained = hashlib.sha1(lp([text(stream.get(k, "")) for k in CHAINED]))
        if chained.hexdigest() != stream.get("hash"):
            found.append(f"entry {name}: its chain hash does not match its fields")
        leaf = hashlib.sha256(b"\x00" + lp([text(name)] + [text(stream.get(k, "")) for k in LEAF])).digest()
        if not included(leaf, entry.get("index", -1), checkpoint["size"], [bytes.fromhex(h) for h in entry["proof"]],
                        root):
            found.append(f"entry {name}: not in the tree the checkpoint signs")
        if stream.get("flow") != bundle.get("flow"):
            found.append(f"entry {name}: of another flow")
        if personal.get("phone") not in ("", bundle.get("phone")):
            found.append(f"entry {name}: of another number")
    for flow_hash, data in (bundle.get("flow_versions") or {}).items():
        # The whole SHA-256; versions of Accord up to 7 December 2026 wrote its first 16 hex digits.
        digest = hashlib.sha256(data.encode()).hexdigest() if data is not None else ""
        if data is not None and flow_hash not in (digest, digest[:16]):
            found.append(f"flow version {flow_hash}: its data does not hash to it")
    for ref, words in (bundle.get("texts") or {}).items():
        if words is None or "=" + hashlib.sha256(text(words)).hexdigest()[:32] != ref:
            found.append(f"text {ref}: its words do not hash to it")
    return found


def words(personal: dict, texts: dict) -> str:
    """Return the text of an entry as sent or received: a reference resolved through the bundle's texts."""
    said = str(personal.get("text", ""))
    if str(personal.get("event", "")).startswith("in:"):
        return said  # the voter's own words, never a reference
    return texts.get(said) or said


def main(argv: list[str]) -> int:
    if not argv or argv[0] in ("-h", "--help"):
        print(__doc__)
        return 2
    trusted = argv[argv.index("--key") + 1] if "--key" in argv else None
    with open(argv[0], encoding="utf-8") as file:
        bundle = json.load(file)
    found = problems(bundle, trusted)
    checkpoint = bundle.get("checkpoint", {})
    print(f"Bundle of {bundle.get('phone')} in flow {bundle.get('flow')} ({bundle.get('controller')}), "
          f"against checkpoint of {checkpoint.get('size')} entries at {checkpoint.get('at')}, "
          f"signed by key {bundle.get('key')}")
    for entry in bundle.get("entries", []):
        personal = entry.get("personal", {})
        print(f"  {entry['stream'].get('at')}  {personal.get('event'):<16} {personal.get('state'):<22} "
              f"{words(personal, bundle.get('texts') or {})!r}"
              + (f"  [{personal['sid']}]" if personal.get("sid") else ""))
    for problem in found:
        print(f"FAIL: {problem}")
    print("OK: every check passed" if not found else f"{len(found)} check(s) failed")
    return 0 if not found else 1


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
