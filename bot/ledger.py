"""Read and verify the consent ledger: a hash-chained stream per flow, personal fields kept apart.

Each stream entry holds the time, the flow and its version hash, the kind of event, a random
person id, a salted commitment to the personal fields, and the chain (prev, hash). The personal
fields (number, event, state move, exact text, provider sid, reply) sit in the person's hash; see
bot/lua/ledger.lua, which writes both. Erasing a person removes those fields: the chain still
verifies, and the entries left tie to nobody.

The oldest entries may have been archived off Redis (see bot/archive.py): the stream then starts at
a recorded base, whose hash the chain starts from instead of "".
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass

from redis import Redis

from bot import references
from bot.keys import base_key, head_key, ledger_key, person_key

SEALED = ("at", "flow", "flow_hash", "kind", "pid", "commit", "prev")
PERSONAL = ("phone", "event", "state", "text", "sid", "reply")
STORED = (*PERSONAL, "salt")  # the personal fields as an entry holds them: a JSON list in this order
PAGE = 1000
Page = list[tuple[bytes, dict[bytes, bytes]]]


@dataclass(frozen=True)
class Base:
    """Where the flow's stream starts: the last entry archived off it ("" and b"" when none was)."""

    last: str = ""
    hash: bytes = b""
    count: int = 0  # entries archived so far
    file: str = ""
    sha256: str = ""


def lp(values: Sequence[bytes]) -> bytes:
    """Length-prefix and join, exactly as the Lua side does before hashing."""
    return b"".join(b"%d:%s" % (len(value), value) for value in values)


def sha1(data: bytes) -> bytes:
    return hashlib.sha1(data).hexdigest().encode()



def entry_order(entry_id: str) -> tuple[int, int]:
    """Sort key of a stream entry id ("ms-seq"): the order Redis's own clock gave it."""
    ms, _, seq = entry_id.partition("-")
    return int(ms), int(seq or 0)

def entries(redis: Redis, flow_id: str, after: str = "") -> Iterator[tuple[bytes, dict[bytes, bytes]]]:
    """Yield the flow's raw stream entries in order (those after entry `after`), a page at a time."""
    start = b"(" + after.encode() if after else b"-"
    while True:
        page = redis.xrange(ledger_key(flow_id), min=start, count=PAGE)
        yield from page
        if len(page) < PAGE:
            return
        start = b"(" + page[-1][0]


def personal(redis: Redis, flow_id: str, page: list[tuple[bytes, dict[bytes, bytes]]]) -> list[dict | None]:
    """Fetch the personal fields of a page of entries (None where erased)."""
    with redis.pipeline(transaction=False) as pipe:
        for entry_id, fields in page:
            pipe.hget(person_key(fields.get(b"pid", b"").decode()), f"{flow_id}|{entry_id.decode()}")
        found = pipe.execute()
    return [stored_fields(raw) if raw else None for raw in found]


def stored_fields(raw: bytes) -> dict:
    """Read an entry's personal fields as the person's hash holds them (bot/lua/ledger.lua writes them).

    A JSON list in STORED's order; entries written before it are JSON objects, read as they are.
    """
    value = json.loads(raw.decode("utf-8", "surrogateescape"))
    if isinstance(value, list) and len(value) == len(STORED):
        return dict(zip(STORED, value, strict=True))
    if isinstance(value, dict):
        return value
    raise ValueError("not an entry's personal fields")


def read(redis: Redis, flow_id: str) -> list[tuple[str, dict[str, str]]]:
    """Return the flow's entries in Redis in order, joined with their personal fields; erased ones say so.

    Entries archived off Redis are not among them: see `archives`. Texts named by reference
    (bot/references.py) come back in full.
    """
    joined, texts = [], references.table(redis)
    for page in pages(entries(redis, flow_id)):
        for (entry_id, fields), person in zip(page, personal(redis, flow_id, page), strict=True):
            entry = {k.decode(): v.decode("utf-8", "replace") for k, v in fields.items()}
            entry.update(references.resolve(person, texts) if person else {"erased": "1"})
            entry.pop("salt", None)
            joined.append((entry_id.decode(), entry))
    return joined


def latest(redis: Redis, flow_id: str, count: int = 20) -> list[tuple[str, dict[str, str]]]:
    """Return the flow's newest entries, newest first, joined with their personal fields (one page)."""
    page = redis.xrevrange(ledger_key(flow_id), count=count)
    joined, texts = [], references.table(redis)
    for (entry_id, fields), person in zip(page, personal(redis, flow_id, page), strict=True):
        entry = {k.decode(): v.decode("utf-8", "replace") for k, v in fields.items()}
        entry.update({k: str(v) for k, v in (references.resolve(person, texts) if person else {"erased": "1"}).items()})
        entry.pop("salt", None)
        joined.append((entry_id.decode(), entry))
    return joined


def verify(redis: Redis, flow_id: str) -> str | None:
    """Walk the chain from the base and each commitment; return the first entry id that does not fit, or None.

    An entry whose personal fields are gone is checked for its place in the chain, and must be
    named by an erasure the ledger recorded after it (see `unrecorded_erasure`). An entry naming a
    text by reference is named if the text's words were changed since (see `changed_text`).
    """
    broken, head, _ = walk(redis, flow_id, pages(entries(redis, flow_id)), base(redis, flow_id).hash)
    if broken:
        return broken
    if (redis.get(head_key(flow_id)) or b"") != head:
        return "head"
    return unrecorded_erasure(redis, flow_id) or changed_text(redis, flow_id)


def changed_text(redis: Redis, flow_id: str) -> str | None:
    """Return the first entry naming a text whose words were changed in Redis (see references.changed)."""
    changed = references.changed(redis)
    if not changed:
        return None
    for page in pages(entries(redis, flow_id)):
        for (entry_id, _), person in zip(page, personal(redis, flow_id, page), strict=True):
            if person is not None and references.named(person) & changed:
                return entry_id.decode()
    return None


def unrecorded_erasure(redis: Redis, flow_id: str) -> str | None:
    """Return the first entry whose personal fields are gone though no erasure in the ledger names it,
    or the first erasure that left some of a person's earlier entries in the flow.

    Erasures name the entries they emptied ("3 entries erased: ID ID ID"); those written before
    they did ("3 entries erased") account for as many emptied entries before them. An erasure
    empties every entry its person has in the flow (bot/lua/erase.lua, in every version): one that
    emptied some and left others was written by hand, to make one entry (a STOP) go while the
    rest (a YES) still shows.
    """
    emptied: list[tuple[str, bytes]] = []  # (entry id, person id) in ledger order, not yet accounted for
    for page in pages(entries(redis, flow_id)):
        erasures: list[tuple[str, set[bytes]]] = []  # each erasure of the page, and whose entries it emptied
        for (entry_id, fields), person in zip(page, personal(redis, flow_id, page), strict=True):
            if person is None:
                emptied.append((entry_id.decode(), fields.get(b"pid", b"")))
            elif fields.get(b"kind") == b"erasure":
                count, _, named = str(person.get("text", "")).partition(" entries erased")
                if named.startswith(": "):
                    listed = set(named[2:].split())
                    erased = [entry for entry in emptied if entry[0] in listed]
                    emptied = [entry for entry in emptied if entry[0] not in listed]
                elif count.isdigit():
                    erased, emptied = emptied[:int(count)], emptied[int(count):]
                else:
                    erased = []
                erasures.append((entry_id.decode(), {pid for _, pid in erased}))
        partial = _left_behind(redis, flow_id, erasures)
        if partial:
            return partial
    return emptied[0][0] if emptied else None


def _left_behind(redis: Redis, flow_id: str, erasures: list[tuple[str, set[bytes]]]) -> str | None:
    """Return the first of these erasures whose people still hold personal fields of an earlier entry of the flow."""
    asked = [(erasure, pid) for erasure, pids in erasures for pid in sorted(pids)]
    with redis.pipeline(transaction=False) as pipe:
        for _, pid in asked:
            pipe.hkeys(person_key(pid.decode()))
        held = pipe.execute()
    prefix = f"{flow_id}|"
    for (erasure, _), names in zip(asked, held, strict=True):
        until = entry_order(erasure)
        if any(name.decode().startswith(prefix) and entry_order(name.decode()[len(prefix):]) < until
               for name in names):
            return erasure
    return None


def walk(redis: Redis, flow_id: str, pages: Iterable[Page], head: bytes) -> tuple[str | None, bytes, int]:
    """Check pages of entries chained from `head`; return the first that does not fit, the new head, the count."""
    count = 0
    for page in pages:
        for (entry_id, fields), person in zip(page, personal(redis, flow_id, page), strict=True):
            sealed = [fields.get(name.encode(), b"") for name in SEALED[:-1]] + [head]
            entry_hash = sha1(lp(sealed))
            if fields.get(b"prev") != head or fields.get(b"hash") != entry_hash:
                return entry_id.decode(), head, count
            if person is not None and fields.get(b"commit") != commitment(person):
                return entry_id.decode(), head, count
            head = entry_hash
            count += 1
    return None, head, count


def commitment(person: dict) -> bytes:
    """Return the commitment an entry's personal fields (salt included) hash to, as bot/lua/ledger.lua writes it."""
    values = [str(person.get(name, "")).encode("utf-8", "surrogateescape") for name in PERSONAL]
    return sha1(str(person.get("salt", "")).encode() + lp(values))


def base(redis: Redis, flow_id: str) -> Base:
    """Return where the flow's stream starts: the last entry archived off it, if any."""
    found = redis.hgetall(base_key(flow_id))
    if not found:
        return Base()
    return Base(found[b"last"].decode(), found[b"hash"], int(found.get(b"count", 0)),
                found.get(b"file", b"").decode(), found.get(b"sha256", b"").decode())


def pages(stream: Iterable[tuple[bytes, dict[bytes, bytes]]]) -> Iterator[Page]:
    page: Page = []
    for entry in stream:
        page.append(entry)
        if len(page) == PAGE:
            yield page
            page = []
    if page:
        yield page
