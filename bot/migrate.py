"""Bring data written by an earlier version up to date; run with the bot stopped (`python -m bot migrate`).

Numbers' states used to sit in one hash per flow, `accord:state:FLOW`, phone -> "state|asked|touched".
They now sit in 10,000 small hashes per flow (bot/states.py). A process that finds the old hash
refuses to start, naming this command, rather than treat every number in it as new.
"""

from __future__ import annotations

from collections.abc import Iterable

from bot import states
from bot.keys import legacy_state_key
from bot.store import Store

BATCH = 1000


class LegacyLayoutError(RuntimeError):
    """Redis holds data in a layout this version no longer reads."""


def legacy_flows(store: Store, flow_ids: Iterable[str]) -> list[str]:
    """Return the flows whose states are still in the earlier layout."""
    ids = sorted(flow_ids)
    with store.redis.pipeline(transaction=False) as pipe:
        for flow_id in ids:
            pipe.type(legacy_state_key(flow_id))
        kinds = pipe.execute()
    return [flow_id for flow_id, kind in zip(ids, kinds, strict=True) if kind == b"hash"]


def check_layout(store: Store, flow_ids: Iterable[str]) -> None:
    """Refuse to run on states this version would not see (LegacyLayoutError names the command)."""
    found = legacy_flows(store, flow_ids)
    if found:
        raise LegacyLayoutError(
            f"Redis holds the states of {', '.join(found)} in the layout of an earlier version, which this one "
            "does not read: stop the bot and its workers, then run `python -m bot migrate`")


def migrate_states(store: Store, flow_id: str) -> int:
    """Move one flow's states into the current layout, then drop the old hash; return how many moved.

    Safe to run again after an interruption: a record is written the same way twice, and the old
    hash goes only once every record is in place.
    """
    old = legacy_state_key(flow_id)
    moved = 0
    batch: list[tuple[str, str]] = []
    for phone, record in store.redis.hscan_iter(old, count=BATCH):
        state, asked_at, touched = record.decode().split("|")
        batch.append((phone.decode(), states.encode(state, float(asked_at), float(touched))))
        if len(batch) == BATCH:
            moved += _write(store, flow_id, batch)
            batch = []
    moved += _write(store, flow_id, batch)
    store.redis.delete(old)
    return moved


def _write(store: Store, flow_id: str, records: list[tuple[str, str]]) -> int:
    with store.redis.pipeline(transaction=False) as pipe:
        for phone, value in records:
            pipe.hset(*states.slot(flow_id, phone), value)
        pipe.execute()
    return len(records)
