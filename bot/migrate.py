"""Bring data written by an earlier version up to date; run with the bot stopped (`python -m bot migrate`).

Numbers' states used to sit in one hash per flow, `accord:state:FLOW`, phone -> "state|asked|touched",
then in 10,000 small hashes per flow named by the numbers' last four digits. They now sit in
100,000, named by five (bot/states.py): 34 million numbers left 3,400 in each of the 10,000, too
many for Redis to keep them compact. A process that finds either earlier layout refuses to start,
naming this command, rather than treat every number in it as new.

Jobs used to carry their numbers, where erasure cannot reach them (RQ keeps a failed job 30
days). They now carry a stored batch's id (bot/batches.py): `migrate_jobs` moves the numbers of
jobs still queued, deferred or failed into batches, and deletes finished ones. Until it runs, a
worker still sends such a job, and `round resume` and `round start` store what an earlier version
left parked or admitted.

Each inbound text is now known for good by a keyed digest of its id (bot/keys.py seen_slot), which
erasure and retention leave: a signed request replayed after them changes nothing. `migrate_seen`
records so the texts an earlier version processed whose id Redis still holds (kept answers,
entries, seal records). Until it runs, those are known by their entries as before, only while the
flow holds the number.
"""

from __future__ import annotations

from collections.abc import Iterable

from rq.job import Job
from rq.registry import FailedJobRegistry, FinishedJobRegistry, ScheduledJobRegistry

from bot import Accord, ledger, sealing, states
from bot.batches import Batches
from bot.keys import key_for, legacy_state_key, person_key, seen_slot, sid_key
from bot.sending import queue_for
from bot.store import GLOBAL_SID, Store

BATCH = 1000


class LegacyLayoutError(RuntimeError):
    """Redis holds data in a layout this version no longer reads."""


def legacy_flows(store: Store, flow_ids: Iterable[str]) -> list[str]:
    """Return the flows whose states are still in an earlier layout (one hash, or hashes of four digits)."""
    ids = sorted(flow_ids)
    with store.redis.pipeline(transaction=False) as pipe:
        for flow_id in ids:
            pipe.type(legacy_state_key(flow_id))
        kinds = pipe.execute()
    return [flow_id for flow_id, kind in zip(ids, kinds, strict=True)
            if kind == b"hash" or _four_digits(store, flow_id)]


def _four_digits(store: Store, flow_id: str) -> bool:
    """Say whether any of the flow's 10,000 hashes of the earlier layout is there (10 EXISTS, no SCAN)."""
    names = [states.state_key(flow_id, suffix) for suffix in states.suffixes(states.EARLIER_SUFFIX)]
    return any(store.redis.exists(*names[start:start + BATCH]) for start in range(0, len(names), BATCH))


def held_flows(store: Store, loaded: Iterable[str]) -> list[str]:
    """Return the flows whose layout matters: those loaded, and those removed that still held numbers,
    which erasure and the purge must read as well as any."""
    ids = list(loaded)
    return ids + store.removed_flows(ids)


def check_layout(store: Store, flow_ids: Iterable[str]) -> None:
    """Refuse to run on states this version would not see (LegacyLayoutError names the command), those
    of flows removed since included."""
    found = legacy_flows(store, held_flows(store, flow_ids))
    if found:
        raise LegacyLayoutError(
            f"Redis holds the states of {', '.join(found)} in the layout of an earlier version, which this one "
            "does not read: stop the bot and its workers, then run `python -m bot migrate`")


def migrate_states(store: Store, flow_id: str) -> int:
    """Move one flow's states into the current layout, then drop the old hashes; return how many moved.

    Safe to run again after an interruption: a record is written the same way twice, and an old
    hash goes only once every record of it is in place. A record this version wrote meanwhile wins.
    """
    moved = 0
    old = legacy_state_key(flow_id)
    batch: list[tuple[str, str]] = []
    for phone, record in store.redis.hscan_iter(old, count=BATCH):
        state, asked_at, touched = record.decode().split("|")
        batch.append((phone.decode(), states.encode(state, float(asked_at), float(touched))))
        if len(batch) == BATCH:
            moved += _write(store, flow_id, batch)
            batch = []
    moved += _write(store, flow_id, batch)
    store.redis.delete(old)
    for suffix in store.state_hashes(flow_id, states.EARLIER_SUFFIX):
        key = states.state_key(flow_id, suffix)
        records = [(states.phone_of(suffix, digits), record.decode())
                   for digits, record in store.redis.hgetall(key).items()]
        moved += _write(store, flow_id, records)
        store.redis.delete(key)
    return moved


def _write(store: Store, flow_id: str, records: list[tuple[str, str]]) -> int:
    with store.redis.pipeline(transaction=False) as pipe:
        for phone, value in records:
            pipe.hsetnx(*states.slot(flow_id, phone), value)
        pipe.execute()
    return len(records)


def migrate_jobs(accord: Accord) -> int:
    """Store the numbers that jobs of an earlier version carry as batches, each job then naming its
    batch; delete such jobs once finished. Return how many jobs changed."""
    queue = queue_for(accord)
    connection = accord.store.redis
    batches = Batches(accord.store)
    changed = 0
    registries = (ScheduledJobRegistry(queue=queue), FailedJobRegistry(queue=queue))
    waiting = queue.get_job_ids() + [job_id for registry in registries for job_id in registry.get_job_ids()]
    for job in Job.fetch_many(waiting, connection=connection):
        items = _carried(job)
        if job is None or items is None or job.args[0] not in accord.flows:
            continue
        flow = accord.flows[job.args[0]]
        job.args = (*job.args[:-1], batches.keep(flow, items.split(",")))
        job.description = job.get_call_string()
        job.save()
        changed += 1
    finished = FinishedJobRegistry(queue=queue)
    for job in Job.fetch_many(finished.get_job_ids(), connection=connection):
        if job is not None and _carried(job) is not None:
            finished.remove(job, delete_job=True)
            changed += 1
    return changed


def _carried(job: Job | None) -> str | None:
    """Return the numbers a send job of an earlier version carries as its last argument, else None."""
    if job is None or job.func_name not in ("bot.sending.send_requests", "bot.sending.send_content"):
        return None
    last = job.args[-1] if job.args else None
    return last if isinstance(last, str) and last.startswith("+") else None


def migrate_seen(store: Store) -> int:
    """Record as known for good every inbound text whose id Redis holds; return how many were not yet.

    The ids are in the answers kept 35 to 70 days (and an earlier version's key of its own), in
    the inbound entries of person hashes, and in seal records once archived. Only Twilio's are
    recorded: an OVHcloud id Redis holds may have come from a service the settings no longer name,
    and recorded under today's it could refuse that service's own text of the same id (see
    Store.known_as). Safe to run again: a digest is written the same way twice.
    """
    found: set[str] = set()
    for key in store.redis.scan_iter(match=key_for("answered", "*"), count=10_000):
        found.update(sid.decode(errors="replace") for sid in store.redis.hkeys(key))
    for key in store.redis.scan_iter(match=sid_key("*"), count=10_000):
        found.add(key.decode(errors="replace")[len(sid_key("")):])
    for key in store.redis.scan_iter(match=person_key("*"), count=10_000):
        for raw in store.redis.hvals(key):
            try:
                fields = ledger.stored_fields(raw)
            except ValueError:
                continue
            if str(fields.get("event", "")).startswith("in:") and fields.get("sid"):
                found.add(str(fields["sid"]))
    for key in store.redis.scan_iter(match=key_for("sealed", "*"), count=10_000):
        for raw in store.redis.hvals(key):
            seal = sealing.parse(raw)
            if seal is not None:
                found.update(seal.sids)
    kept = sorted(sid for sid in found if GLOBAL_SID.fullmatch(sid))
    recorded = 0
    for start in range(0, len(kept), BATCH):
        with store.redis.pipeline(transaction=False) as pipe:
            for sid in kept[start:start + BATCH]:
                pipe.hset(*seen_slot(store.seen_digest(sid)), "1")
            recorded += sum(pipe.execute())
    return recorded
