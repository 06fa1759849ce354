"""A number's personal ledger fields in a flow, once archived off Redis: sealed under a key Redis keeps.

Two entries of a number asked and sent hold some 420 bytes of personal fields (number, event,
text reference, provider id, salt): 14 GB of Redis at 34 million numbers, for fields nobody
reads but an access request or a proof. So once a stream segment is archived (bot/archive.py),
its entries' personal fields go to a file beside it (bot/personal_archive.py), each number's lines
sealed with AES-GCM under a random key of its own for that flow. The key stays in Redis, in a
record laid out as the state's (bot/states.py: the flow's hash for the number's last five digits,
field = the digits before them), with the files holding the number's lines and the provider's ids
of the texts it sent in (the replay check and erasure need them; bot/lua/step.lua, erase.lua).

Erasure and retention delete that record with the state (bot/lua/state.lua's del_state): the lines
left in the files can then be read by nobody, whoever holds the files and a copy of Redis since.

A record is the 16 bytes of the key, then "@" and where each line of the number's is (its file's
number, its offset and its length, base 36, joined by dots), then "!" and a provider id for each
inbound text archived.
"""

from __future__ import annotations

import base64
import json
import os
import re
from dataclasses import dataclass

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from bot.keys import sealed_key
from bot.states import SUFFIX

KEY_BYTES = 16
NONCE_BYTES = 12
TOKEN = re.compile(r"([@!])([^@!]+)")
SID = re.compile(r"[^@!]+")  # a provider id a record can hold


class SealError(ValueError):
    """A sealed line that does not open under the key given (another key, or changed bytes)."""


@dataclass(frozen=True)
class Seal:
    """A number's seal record in one flow."""

    key: bytes
    files: tuple[tuple[int, int, int], ...] = ()  # each line holding its entries: file number, offset, length
    sids: tuple[str, ...] = ()


def slot(flow_id: str, phone: str) -> tuple[str, str]:
    """Return the hash and field of a number's seal record in a flow (the state's, in its own family)."""
    return sealed_key(flow_id, phone[-SUFFIX:]), phone[1:-SUFFIX]


def new_key() -> bytes:
    return os.urandom(KEY_BYTES)


def parse(raw: bytes | None) -> Seal | None:
    """Read a stored record; None for none, or one not in the layout above."""
    if not raw or len(raw) < KEY_BYTES:
        return None
    try:
        rest = raw[KEY_BYTES:].decode("ascii")
    except UnicodeDecodeError:
        return None
    tokens = TOKEN.findall(rest)
    if "".join(mark + value for mark, value in tokens) != rest:
        return None
    try:
        files = tuple(_line(value) for mark, value in tokens if mark == "@")
    except ValueError:
        return None
    return Seal(raw[:KEY_BYTES], files, tuple(value for mark, value in tokens if mark == "!"))


def _line(value: str) -> tuple[int, int, int]:
    number, offset, length = (int(part, 36) for part in value.split("."))
    return number, offset, length


def seal(key: bytes, flow_id: str, pid: str, entries: dict[str, list]) -> str:
    """Seal one number's entries of a flow (entry id -> what the file keeps of it); base64 text.

    The flow and person id are bound in: a line moved to another person's place does not open.
    """
    nonce = os.urandom(NONCE_BYTES)
    plain = json.dumps(entries, separators=(",", ":")).encode("utf-8", "surrogateescape")
    return base64.b64encode(nonce + AESGCM(key).encrypt(nonce, plain, _bound(flow_id, pid))).decode()


def unseal(key: bytes, flow_id: str, pid: str, sealed: str) -> dict[str, list]:
    """Open a line `seal` wrote; SealError if it does not open under this key for this flow and person."""
    try:
        blob = base64.b64decode(sealed, validate=True)
        plain = AESGCM(key).decrypt(blob[:NONCE_BYTES], blob[NONCE_BYTES:], _bound(flow_id, pid))
    except (ValueError, InvalidTag) as error:
        raise SealError(f"a sealed line of {pid} in {flow_id} does not open") from error
    found = json.loads(plain.decode("utf-8", "surrogateescape"))
    if not isinstance(found, dict):
        raise SealError(f"a sealed line of {pid} in {flow_id} holds no entries")
    return found


def _bound(flow_id: str, pid: str) -> bytes:
    return f"{flow_id}|{pid}".encode()
