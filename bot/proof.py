"""Proof of consent (COMPLIANCE.md A.6): per number, the request it received, its answers, its origin.

Records are built one number at a time from what the ledger holds on that number, so an export
of a large flow keeps memory flat; every export is itself logged in the ledger (C.12). The personal
fields of entries archived off Redis stay in Redis; their times and flow hashes went to the archive
files, which `archived_times` reads back.
"""

from __future__ import annotations

import csv
import datetime as dt
import getpass
import json
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path
from typing import IO, Any

from bot import Accord, archive, machine
from bot.flows import Flow
from bot.keys import ledger_key, person_key
from bot.ledger import entry_order, stored_fields
from bot.phones import FRENCH_MOBILE_E164, MobileBits

FORMATS = ("jsonl", "csv")
COLUMNS = ("phone", "flow", "outcome", "request_text", "flow_hash", "asked_at", "sent_at", "request_sid",
           "request_status", "answers", "events", "operator", "origin")
Imports = list[tuple[tuple[int, int], dict[str, Any]]]
# Kinds of entry whose time and flow hash no proof shows: those with no number (imports are read
# from their personal fields, see import_origins), content, and refused sends (only their text).
UNSHOWN = frozenset({b"import", b"export", b"erasure", b"content", b"send_failed"})


def export(accord: Accord, flow: Flow, out: IO[str], fmt: str = "jsonl", phone: str | None = None,
           destination: str = "stdout", archived: archive.Sealed | None = None) -> int:
    """Write the proof for every number of `flow` (or one) to `out`, log the export; return the count.

    `archived` gives the times and flow hashes of entries archived off Redis (see `archived_times`);
    without it they show blank.
    """
    if fmt not in FORMATS:
        raise ValueError(f"format must be one of {', '.join(FORMATS)}")
    imports = import_origins(accord, flow)
    fallback = _json(accord.store.round_settings(flow).get("origin", ""))
    numbers = [phone] if phone else _unique(p for p, *_ in accord.store.records(flow))
    write = _csv_writer(out) if fmt == "csv" else _jsonl_writer(out)
    count = 0
    try:
        for number in numbers:
            found = record(accord, flow, number, imports, fallback, archived)
            if found is not None:
                write(found)
                count += 1
        out.flush()
    finally:  # an export cut short (full disk, closed pipe) still let records out: log it too
        accord.store.record_export(flow, json.dumps({
            "operator": getpass.getuser(), "scope": "one number" if phone else "all", "format": fmt,
            "count": count, "output": destination}, ensure_ascii=False))
    return count


def record(accord: Accord, flow: Flow, phone: str, imports: Imports,
           fallback_origin: dict[str, Any] | None = None,
           archived: archive.Sealed | None = None) -> dict[str, Any] | None:
    """Build one number's proof from its ledger entries in `flow`; None when nothing is held."""
    entries = accord.store.person(phone).get(flow.id, [])
    outcome = accord.store.state(flow, phone)
    if not entries and outcome == "new":
        return None
    outcome = settled(entries, outcome)
    for entry in entries:
        if not entry["at"] and archived and (sealed := archived.get(entry["entry"])):
            entry["at"] = sealed[0]
    requests, answers, events = chain(entries)
    for request in requests:
        request["flow_hash"] = _sealed_hash(accord, flow.id, request["entry"], archived)
        if request["message_sid"]:
            request["status"] = accord.store.message_status(request["message_sid"]) or ""
    first = requests[0]["entry"] if requests else (entries[0]["entry"] if entries else "")
    # The import that queued it, as its claim names it; else (claims before imports were named)
    # the latest import before its first request.
    origin = import_named(imports, entries) or origin_before(imports, first) or fallback_origin
    return {"phone": phone, "flow": flow.id, "outcome": outcome, "requests": requests, "answers": answers,
            "events": events, "origin": origin, "operator": (origin or {}).get("operator", "")}


def settled(entries: Iterable[dict[str, str]], stored: str) -> str:
    """Return what came of a number: where the ledger's last move left it, unless it is the stored
    state, or expiry (evaluated on reading) alone tells them apart.

    The stored state is no part of any chain: edited in Redis (a STOP made "consented"), it would
    be the proof's outcome while the answers it lists said otherwise.
    """
    moves = [move for move in (entry.get("state", "").split(">") for entry in entries)
             if len(move) == 2 and move[1] in machine.STATES]
    if not moves or moves[-1][1] == stored or (moves[-1][1] in machine.OPEN and stored == "expired"):
        return stored
    return moves[-1][1]


def chain(entries: Iterable[dict[str, str]]) -> tuple[list[dict], list[dict], list[dict]]:
    """Split one number's entries into consent requests (with their sending), answers and other moves."""
    requests: list[dict] = []
    answers: list[dict] = []
    events: list[dict] = []
    waiting: dict | None = None  # the request whose provider receipt ("sent") has not come yet
    for entry in entries:
        event = entry.get("event", "")
        if event.partition(":")[0] == "ask":  # "ask:ID": the import that queued the number
            waiting = {"text": entry["text"], "asked_at": iso(entry["at"]), "sent_at": "", "message_sid": "",
                       "entry": entry["entry"], "import": event.partition(":")[2]}
            requests.append(waiting)
        elif event == "sent" and waiting is not None and waiting["text"] in (entry["text"], ""):
            # The request's own receipt, not an answer reconcile sent late to another text meanwhile.
            waiting.update(text=entry["text"], sent_at=iso(entry["at"]), message_sid=entry["sid"])
            waiting = None
        elif event == "send_failed" and waiting is not None:
            waiting["failed"] = entry["text"]
            waiting = None
        elif event.startswith("in:"):
            answers.append({"at": iso(entry["at"]), "sid": entry["sid"], "event": event[3:], "text": entry["text"],
                            "state": entry["state"], "entry": entry["entry"]})
            source, _, dest = entry["state"].partition(">")
            if dest == "asked" and source != "asked":
                # START asked again: the request went back at once, as the answer to this very text
                # (TwiML), or, when reconcile found the text late, in the "sent" entry that follows.
                # Any other answer (help, a clarification) asks nothing: it is no consent request.
                replies = _json(entry.get("reply", "")) or []
                request = {"text": replies[0] if replies else "", "asked_at": iso(entry["at"]),
                           "sent_at": iso(entry["at"]) if replies else "", "message_sid": "",
                           "in_reply_to": entry["sid"], "entry": entry["entry"]}
                requests.append(request)
                waiting = None if replies else request
        elif entry.get("state"):
            events.append({"at": iso(entry["at"]), "event": event, "state": entry["state"], "text": entry["text"]})
    return requests, answers, events


def import_origins(accord: Accord, flow: Flow) -> Imports:
    """Return the flow's imports (entry id, origin), oldest first, archived or not.

    They are read from the personal fields of the ledger's entries without a number, which stay in
    Redis when the entries are archived: imports, exports and erasures, a scan at a time.
    """
    found: dict[str, dict[str, Any]] = {}  # by entry id: a scan may yield a field twice
    for name, raw in accord.store.redis.hscan_iter(person_key("-"), match=f"{flow.id}|*", count=1000):
        try:
            fields = stored_fields(raw)
        except ValueError:  # a tampered entry: no origin from it rather than a failure
            continue
        origin = _json(fields.get("text", "")) if fields.get("event") == "import" else None
        if origin:
            found[name.decode().partition("|")[2]] = origin
    return sorted(((entry_order(entry_id), origin) for entry_id, origin in found.items()), key=lambda item: item[0])


def archived_times(accord: Accord, flow: Flow, paths: Iterable[Path], phone: str | None = None) -> archive.Sealed:
    """Read the times and flow hashes the proof shows from the flow's archive files among `paths`.

    Every recorded archive file is needed, or with `phone` only those holding that number's archived
    entries; archive.ArchiveError names one missing or not the file archived.
    """
    wanted = None
    if phone:
        recorded = archive.archives(accord.store.redis, flow.id)
        wanted = {held.file for entry in accord.store.person(phone).get(flow.id, [])
                  if (held := archive.holding(recorded, entry["entry"]))}
    found = archive.Sealed()
    for entry_id, fields in archive.recorded_entries(accord.store.redis, flow.id, paths, wanted):
        if fields.get(b"kind", b"") not in UNSHOWN:
            found.add(entry_id, fields)
    return found


def import_named(imports: Imports, entries: Iterable[dict[str, str]]) -> dict[str, Any] | None:
    """Return the origin of the import a number's first claim names ("ask:ID"), or None."""
    named = next((e["event"].partition(":")[2] for e in entries if e.get("event", "").startswith("ask:")), "")
    return next((origin for _, origin in imports if named and origin.get("id") == named), None)


def origin_before(imports: Imports, entry_id: str) -> dict[str, Any] | None:
    """Return the origin of the latest import logged before `entry_id` (the round that asked)."""
    if not entry_id:
        return imports[-1][1] if imports else None
    bound = entry_order(entry_id)
    earlier = [origin for at, origin in imports if at < bound]
    return earlier[-1] if earlier else None


def flatten(proof: dict[str, Any]) -> dict[str, str]:
    """Return a proof record as one CSV row (requests and answers joined with ' ; ')."""
    requests = proof["requests"]

    def joined(key: str) -> str:
        return " ; ".join(str(r.get(key, "")) for r in requests)

    return {
        "phone": proof["phone"], "flow": proof["flow"], "outcome": proof["outcome"],
        "request_text": joined("text"), "flow_hash": joined("flow_hash"), "asked_at": joined("asked_at"),
        "sent_at": joined("sent_at"),
        "request_sid": " ; ".join(r["message_sid"] or f"reply to {r.get('in_reply_to', '')}" for r in requests),
        "request_status": joined("status"),
        "answers": " ; ".join(f"{a['at']}|{a['sid']}|{a['event']}|{a['text']}" for a in proof["answers"]),
        "events": " ; ".join(f"{e['at']}|{e['event']}|{e['state']}" for e in proof["events"]),
        "operator": proof["operator"],
        "origin": json.dumps(proof["origin"], ensure_ascii=False) if proof["origin"] else "",
    }


def iso(at: str) -> str:
    """Format a ledger time (epoch seconds) as ISO 8601 UTC."""
    return dt.datetime.fromtimestamp(float(at or 0), dt.UTC).isoformat(timespec="seconds") if at else ""


def _csv_writer(out: IO[str]) -> Callable[[dict[str, Any]], object]:
    writer = csv.DictWriter(out, fieldnames=COLUMNS, lineterminator="\n")
    writer.writeheader()
    return lambda proof: writer.writerow(flatten(proof))


def _jsonl_writer(out: IO[str]) -> Callable[[dict[str, Any]], object]:
    return lambda proof: out.write(json.dumps(proof, ensure_ascii=False) + "\n")


def _sealed_hash(accord: Accord, flow_id: str, entry_id: str, archived: archive.Sealed | None) -> str:
    """Return the flow version hash sealed in the chain for an entry (the flow may have changed since)."""
    found = accord.store.redis.xrange(ledger_key(flow_id), min=entry_id, max=entry_id)
    if found:
        return found[0][1].get(b"flow_hash", b"").decode()
    sealed = archived.get(entry_id) if archived else None
    return sealed[1] if sealed else ""


def _unique(phones: Iterable[str]) -> Iterator[str]:
    """Drop the repeats a hash scan may yield when the hash is resized under it, in little memory."""
    mobiles, others = MobileBits(), set[str]()
    for phone in phones:
        if FRENCH_MOBILE_E164.fullmatch(phone):
            if not mobiles.add(phone):
                continue
        elif phone in others:
            continue
        else:
            others.add(phone)
        yield phone



def _json(text: str) -> Any:
    try:
        return json.loads(text) if text else None
    except ValueError:  # an origin written by hand, or a tampered entry: show nothing rather than fail
        return None
