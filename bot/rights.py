"""Data-subject rights and retention: show what is held on a number, erase it, purge what is due.

A number lives in few places, and erasure and retention reach each: its state record in each
flow, the ledger's personal fields, its bit in the flows' bitmaps (the offset is the number),
its claims whose send is in flight (bot/witness.py), the batches still waiting for a worker, an
import's rejected lines and exports on disk, what the local outbox sent it, and Redis's own files
(rewritten after). Jobs carry a batch's id, never a number. What stays is its keyed HMAC: on a
suppression list, and in the asked-before set of each flow that asked it.
"""

from __future__ import annotations

import datetime as dt
import json
import logging
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from redis.exceptions import RedisError

from bot import Accord, compaction, ledger, proof, written
from bot.batches import Batches
from bot.flows import Flow
from bot.keys import person_key, suppression_key

log = logging.getLogger(__name__)
RETENTION_DAYS = 60  # non-responders and NO answers, from the request (COMPLIANCE.md D.14)
REMOVED = "(its flow file was removed)"


def show(accord: Accord, phone: str) -> dict:
    """Gather everything held on a number, with where it came from (GDPR art. 15)."""
    store = accord.store
    held = store.person(phone, [flow.id for flow in store.retired(accord.flows)])
    flows = {}
    for flow in accord.flows.values():
        state = store.state(flow, phone)
        if state == "new" and flow.id not in held and not store.is_suppressed(flow, phone):
            continue
        flows[flow.id] = {
            "controller": flow.controller, "purpose": flow.purpose, "source": flow.source,
            "notice": flow.notice_url, "state": state, "objected": store.is_suppressed(flow, phone),
            "import": _import_of(accord, flow, held.get(flow.id, [])), "ledger": held.get(flow.id, []),
        }
    for flow_id in sorted(set(held) - set(flows)):  # a flow whose file was removed: `purge` erases it
        flows[flow_id] = {"controller": REMOVED, "purpose": REMOVED, "source": REMOVED, "notice": REMOVED,
                          "state": REMOVED, "objected": False, "import": "", "ledger": held[flow_id]}
    return {"phone": phone, "flows": flows}


def _import_of(accord: Accord, flow: Flow, entries: list[dict[str, str]]) -> str:
    """Name the import that brought the number (its claim says which), else the flow's latest."""
    named = proof.import_named(proof.import_origins(accord, flow), entries) if entries else None
    return json.dumps(named, ensure_ascii=False) if named else accord.store.round_settings(flow).get("origin", "")


@dataclass(frozen=True)
class Objection:
    """One number on a controller's objection list: its HMAC, when, the senders a START lifted it for."""

    digest: str
    since: float
    lifted_for: tuple[str, ...]
    phone: str = ""  # "" where Accord holds the number no more (erased, purged), or was not asked for it


def objection_list(accord: Accord, controller_id: str, *, numbers: bool = False, chunk: int = 1_000) -> list[Objection]:
    """Read a controller's objection list (its suppression hash), oldest first; with `numbers`, each
    number Accord still holds, read from the person's ledger fields and checked against its HMAC.

    The list keeps only HMACs: an erased or purged number is on it and nowhere else, so its phone
    stays blank. Nothing here guesses a number back from its HMAC.
    """
    redis = accord.store.redis
    listed = []
    for raw, value in redis.hgetall(suppression_key(controller_id)).items():
        at, *lifted = value.decode(errors="replace").split("|")
        try:
            since = float(at)
        except ValueError:  # not as the scripts write it: listed all the same, undated
            since = 0.0
        listed.append(Objection(raw.decode(errors="replace"), since, tuple(lifted)))
    listed.sort(key=lambda item: (item.since, item.digest))
    if not numbers:
        return listed
    found: dict[str, str] = {}
    for start in range(0, len(listed), chunk):
        found.update(_held_numbers(accord, [item.digest for item in listed[start:start + chunk]]))
    return [Objection(item.digest, item.since, item.lifted_for, found.get(item.digest, "")) for item in listed]


def _held_numbers(accord: Accord, digests: list[str]) -> Iterator[tuple[str, str]]:
    """Yield (HMAC, number) for the HMACs whose person Redis still holds, with the number that hashes to it."""
    redis = accord.store.redis
    pids = accord.store.pids(digests)
    held = [(digest, pid.decode()) for digest, pid in zip(digests, pids, strict=True) if pid]
    with redis.pipeline(transaction=False) as pipe:
        for _, pid in held:
            pipe.hgetall(person_key(pid))
        people = pipe.execute()
    for (digest, _), fields in zip(held, people, strict=True):
        for name, raw in fields.items():
            phone = ledger.stored_fields(raw).get("phone", "") if name != b"pid" else ""
            if phone and accord.store.digest(phone) == digest:
                yield digest, phone
                break


def erase(accord: Accord, phone: str, *, wait: bool = True) -> dict[str, int]:
    """Erase a number everywhere, keeping only the suppression HMAC so the objection holds (art. 17, 21).

    Flows whose file was removed are reached too, and the objection goes on every controller's
    list Redis holds. Redis's files are rewritten after: with `wait`, as an operator's command does,
    once a rewrite already running ends; without, as the voter's page does, never waiting for one
    (bot/compaction.py). Return the ledger entries erased per flow that held the number.
    """
    store = accord.store
    retired = store.retired(accord.flows)
    erased = store.erase([*accord.flows.values(), *retired], phone, whole=True, objection=True,
                         controllers=store.objection_lists())
    Batches(store).forget([*accord.flows, *(flow.id for flow in retired)], [phone])
    store.forget_outbox(phone)
    written.erase(accord, phone)
    compaction.want(store.redis)
    try:
        compaction.rewrite(store.redis, store.clock, wait=wait)
    except RedisError as error:  # erased all the same: Redis's files wait for the workers' upkeep
        log.warning("Redis's files not rewritten after an erasure: %s", error)
    return erased


def object_everywhere(accord: Accord, phone: str, *, detail: str) -> int:
    """Record the number's objection on every sender, as a STOP texted to each would (art. 21).

    The store's STOP path, once per sender: every flow there moves to opted_out, each flow's
    controller lists the HMAC, queued texts stop, and the ledger records "stop:DETAIL". Return the
    flows now opted out.
    """
    by_sender: dict[str, list[Flow]] = {}
    for flow in accord.flows.values():
        by_sender.setdefault(flow.sender, []).append(flow)
    for flows in by_sender.values():
        accord.store.step(flows, phone, "stop", detail=detail)
    return sum(accord.store.state(flow, phone) == "opted_out" for flow in accord.flows.values())


def keep_export(accord: Accord, path: Path) -> None:
    """Record a file an export wrote, so that retention and erasure reach it (bot/written.py)."""
    written.record_export(accord, path)


def due(flow: Flow, state: str, asked_at: float, touched: float, now: float) -> str | None:
    """Say why a number's data in a flow must go now, or None (COMPLIANCE.md D.14).

    Nothing stays beyond the flow's `retention_days` (at most three years) after the voter's last
    contact, whatever the state; a flow with no end date keeps consented numbers that long.
    """
    if state == "opted_out":
        return "opted out: reduced to the suppression HMAC"
    if state == "consented":
        end = flow.end_date
        if end and dt.datetime.fromtimestamp(now, flow.timezone).date() > end:
            return "consented: the flow's end date has passed"
        if now - touched >= flow.retention_days * 86400:
            return f"consented: {flow.retention_days} days after the last contact (retention_days)"
        return None
    days = min(RETENTION_DAYS, flow.retention_days)
    since = asked_at if state in ("asked", "clarified", "expired", "declined") else touched
    if now - since >= days * 86400:
        return f"{'declined' if state == 'declined' else 'no answer'}: {days} days after the request"
    return None


def purge(accord: Accord, *, dry_run: bool = False) -> Counter[str]:
    """Apply the retention rules to every flow, and to files; return what was (or would be) removed, by reason.

    A flow whose file was removed keeps nothing but its ledger's chain: no end date or notice
    covers its numbers any more. A flow past its end date keeps no batch, no bitmap, and no state
    record nobody can read.
    """
    store, removed = accord.store, Counter[str]()
    batches = Batches(store)
    now = store.clock()
    if not dry_run:
        store.relist()
    purged: set[str] = set()  # the numbers whatever the local outbox sent them goes with
    for flow in accord.flows.values():
        gone = []
        contents = {flow.id: store.content_messages(flow)}  # read once for the flow's erasures
        for phone, state, asked_at, touched in list(store.records(flow)):
            reason = due(flow, state, asked_at, touched, now)
            if reason:
                removed[f"{flow.id}: {reason}"] += 1
                gone.append(phone)
                if not dry_run:
                    store.erase([flow], phone, whole=False, objection=state == "opted_out", contents=contents)
        ended = flow.has_ended(now)
        if ended:
            # A record nobody can read has no dates to keep it by; once nothing may be sent any more, it
            # goes too (its number is in its field's name). An objection stays: it is the HMAC's.
            for phone, _ in list(store.unreadable(flow)):
                removed[f"{flow.id}: an unreadable record, after its end date"] += 1
                gone.append(phone)
                if not dry_run:
                    store.erase([flow], phone, whole=False, objection=False, contents=contents)
        purged.update(gone)
        if not dry_run:
            batches.forget([flow.id], gone)
        stale = batches.expire(flow.id, None if ended else now - RETENTION_DAYS * 86400, dry_run=dry_run)
        if stale:
            removed[f"{flow.id}: batches not sent, " + ("after its end date" if ended else
                                                         f"{RETENTION_DAYS} days after they were queued")] += stale
        if ended and not dry_run and store.retire(flow.id):
            removed[f"{flow.id}: its bitmaps, after its end date (who was asked is kept as HMACs)"] += 1
    for retired in store.retired(accord.flows):
        for phone in store.numbers_held(retired):
            removed[f"{retired.id}: {REMOVED}"] += 1
            purged.add(phone)
            if not dry_run:
                store.erase([retired], phone, whole=False, objection=False)
        stale = batches.expire(retired.id, dry_run=dry_run)
        if stale:
            removed[f"{retired.id}: batches not sent {REMOVED}"] += stale
        if not dry_run and store.retire(retired.id):
            removed[f"{retired.id}: its bitmaps {REMOVED} (who was asked is kept as HMACs)"] += 1
    if not dry_run:
        store.unlist_emptied(accord.flows)  # rights requests read them no more
    removed.update(written.purge(accord, dry_run=dry_run))
    if purged and not dry_run:
        store.forget_outbox(*purged)
    if removed and not dry_run:
        compaction.want(store.redis)
    # And the erasures the voters' page left to the workers' upkeep, where no worker runs.
    if not dry_run and (removed or compaction.pending(store.redis)):
        compaction.rewrite(store.redis, store.clock, wait=True)
    return removed
