"""Batches of numbers waiting for a worker, kept in Redis under a random id that jobs carry instead.

RQ keeps a job's arguments for a day once it finished and for 30 days once it failed, where
erasure cannot reach them. So a job carries its flow and batch id, never a number: the batch's
items ('phone', 'phone/postcode' or 'phone/region') live in `accord:batch:FLOW:ID`, indexed by
when they were stored in `accord:batches:FLOW`, until the job ends. What a worker defers or parks
goes on as a new batch. Erasure and retention take numbers out of every batch (bot/rights.py).
"""

from __future__ import annotations

from collections.abc import Collection, Sequence
from functools import lru_cache

from redis.client import Pipeline

from bot.flows import Flow
from bot.keys import admitted_key, batch_key, batches_key, parked_key, suppression_key
from bot.store import Store, lua, new_batch_id

READ_AT_ONCE = 200  # batches read in one round trip while looking for numbers (200 x about 9 kB)


class Batches:
    """The stored batches of every flow."""

    def __init__(self, store: Store) -> None:
        self.store, self.redis = store, store.redis
        self._keep = self.redis.register_script(_source("state", "batch"))
        self._unbatch = self.redis.register_script(_source("unbatch"))

    def keep(self, flow: Flow, items: Sequence[str], pipe: Pipeline | None = None, origin: str = "") -> str:
        """Store `items` as a new batch of `flow` (in `pipe`, if given); return its id.

        Numbers whose objection holds on the flow's sender are left out (see batch.lua). `origin`
        is the import they came from, carried on in the id (see store.new_batch_id).
        """
        batch_id = new_batch_id(origin)
        digest = self.store.digest
        digests = "".join([digest(item.partition("/")[0]) for item in items])
        self._keep(keys=[batch_key(flow.id, batch_id), batches_key(flow.id), suppression_key(flow.controller_id)],
                   args=[",".join(items), digests, flow.sender, self.store.clock(), batch_id, flow.id], client=pipe)
        return batch_id

    def read(self, flow_id: str, batch_id: str) -> list[str] | None:
        """Return a batch's items; None once its job ended, or erasure or retention emptied it."""
        value = self.redis.get(batch_key(flow_id, batch_id))
        return None if value is None else [item for item in value.decode().split(",") if item]

    def done(self, flow_id: str, batch_id: str) -> None:
        """Drop a batch whose job ended: the finished job keeps only its id."""
        with self.redis.pipeline(transaction=True) as pipe:
            pipe.delete(batch_key(flow_id, batch_id))
            pipe.zrem(batches_key(flow_id), batch_id)
            pipe.execute()

    def forget(self, flow_ids: Collection[str], phones: Collection[str]) -> int:
        """Take these numbers out of every stored batch of these flows; return how many items went.

        A scan of the flows' stored batches (what their rounds still have to send): about 9 kB
        read per batch of 500, so a few seconds for a million numbers queued; once for an
        erasure, once per purge.
        """
        wanted, removed = set(phones), 0
        if not wanted:
            return 0
        for flow_id in flow_ids:
            ids = [raw.decode() for raw in self.redis.zrange(batches_key(flow_id), 0, -1)]
            for start in range(0, len(ids), READ_AT_ONCE):
                chunk = ids[start:start + READ_AT_ONCE]
                values = self.redis.mget([batch_key(flow_id, batch_id) for batch_id in chunk])
                for batch_id, value in zip(chunk, values, strict=True):
                    held = wanted.intersection(item.partition("/")[0] for item in (value or b"").decode().split(","))
                    if held:
                        removed += self._unbatch(keys=[batch_key(flow_id, batch_id), batches_key(flow_id),
                                                       admitted_key(flow_id)], args=[batch_id, *sorted(held)])
        return removed

    def expire(self, flow_id: str, before: float | None = None, *, dry_run: bool = False) -> int:
        """Drop the flow's batches stored before `before` (every one, and the lists naming them, if
        None); return how many.

        Their ids go from the lists of admitted and parked batches too; a job still queued with
        one finds nothing to send.
        """
        index = batches_key(flow_id)
        ids = [raw.decode() for raw in self.redis.zrangebyscore(index, "-inf", "+inf" if before is None
                                                                else f"({before}")]
        if before is None and not dry_run:
            self.redis.delete(admitted_key(flow_id), parked_key(flow_id))
        if dry_run or not ids:
            return len(ids)
        gone = set(ids)
        held: set[str] = set()  # the numbers of the batches dropped
        for start in range(0, len(ids), READ_AT_ONCE):
            chunk = ids[start:start + READ_AT_ONCE]
            for value in self.redis.mget([batch_key(flow_id, batch_id) for batch_id in chunk]):
                held.update(item.partition("/")[0] for item in (value or b"").decode().split(",") if item)
        parked = [raw.decode() for raw in self.redis.lrange(parked_key(flow_id), 0, -1)]
        with self.redis.pipeline(transaction=True) as pipe:
            for start in range(0, len(ids), 1000):
                chunk = ids[start:start + 1000]
                pipe.delete(*(batch_key(flow_id, batch_id) for batch_id in chunk))
                pipe.zrem(index, *chunk)
            for batch_id in ids:
                pipe.lrem(admitted_key(flow_id), 0, batch_id)
            for entry in parked:
                if entry.rpartition("|")[2] in gone:
                    pipe.lrem(parked_key(flow_id), 0, entry)
            pipe.execute()
        self.store.unqueue_unasked(flow_id, held)  # never sent: nothing may say they were on the list
        return len(ids)


@lru_cache(maxsize=4)
def _source(*names: str) -> str:
    return lua(*names)  # read once: a worker builds Batches for each job
