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
"""

from __future__ import annotations

from collections.abc import Iterable

from rq.job import Job
from rq.registry import FailedJobRegistry, FinishedJobRegistry, ScheduledJobRegistry

from bot import Accord, states
from bot.batches import Batches
from bot.keys import legacy_state_key
from bot.sending import queue_for
from bot.store import Store

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


def check_layout(store: Store, flow_ids: Iterable[str]) -> None:
    """Refuse to run on states this version would not see (LegacyLayoutError names the command)."""
    found = legacy_flows(store, flow_ids)
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
