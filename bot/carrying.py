"""A job that has started every send of its batch carries on with the round's next queued batch.

One worker alone keeps the round's rate only if it never stops. Between two jobs it waited for its
last sends' answers (one provider latency, 0.2 s), then for RQ to start the next job (about as
long): 0.39 s at each switch, some 8% of any 10 seconds at 100 texts a second in batches of 500.
So when a job runs out of numbers while its last sends are still out, it takes the job at the
head of the queue, if that job sends the same round (same function, flow, message, import and
attempt), off the queue, notes the taken job's id under its own (`accord:carried:JOB`), and sends
its batch on without a gap. Only the head: jobs keep the order they were queued in. The taken
jobs end with the job that took them; their batches are dropped as its own is.

A worker dying meanwhile: bot/workers.py puts the carried jobs back on the queue together with the
job that took them. Run again, they send nothing twice: each number is claimed (or each content
released) at most once.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from rq import Queue
from rq.exceptions import DeserializationError
from rq.job import Job, get_current_job

from bot.batches import Batches
from bot.flows import Flow
from bot.keys import carried_key
from bot.store import origin_of

# KEYS: the queue, the carrying job's list of carried ids. ARGV: the job id read at the queue's head.
# Taken only if still there: another worker may have started it meanwhile.
TAKE_LUA = """
if redis.call('LINDEX', KEYS[1], 0) ~= ARGV[1] or redis.call('LREM', KEYS[1], 1, ARGV[1]) == 0 then return 0 end
redis.call('RPUSH', KEYS[2], ARGV[1])
return 1
"""
SPARE = 60.0  # seconds of the carrying job's time limit kept for its end (settling, later batches)


@dataclass
class Carrier:
    """What the running job carried: the ids of the jobs it took, and their batches."""

    queue: Queue
    stored: Batches
    flow: Flow
    batch: str  # the job's own batch
    job: Job | None = field(default_factory=get_current_job)  # None outside an RQ job: nothing is carried
    taken: list[tuple[Job, str]] = field(default_factory=list)

    def carry(self, items: list[str], seconds_so_far: float, seconds_a_number: float) -> bool:
        """Add to `items` the numbers of the round's next queued batch, if its job is at the queue's head
        and there is time for it within this job's limit; say whether any were added."""
        while self.job is not None and not self.batch.startswith("+"):  # "+": an earlier version's, numbers inline
            head = self.queue.connection.lindex(self.queue.key, 0)
            found = Job.fetch_many([head.decode()], connection=self.queue.connection)[0] if head else None
            if found is None or not self._same_round(found):
                return False
            batch = found.args[-1]
            more = self.stored.read(self.flow.id, batch)
            if seconds_so_far + 2 * len(more or ()) * seconds_a_number + SPARE > (self.job.timeout or 0):
                return False
            if not self.queue.connection.eval(TAKE_LUA, 2, self.queue.key, carried_key(self.job.id), found.id):
                return False  # started by another worker meanwhile
            self.taken.append((found, batch))
            if more:  # else done by an earlier run, or emptied by erasure: its job ends with this one
                items.extend(more)
                return True
        return False

    def _same_round(self, other: Job) -> bool:
        job = self.job
        try:
            other.func_name  # noqa: B018  (reads the job's data: a job RQ cannot read is not this round's)
        except DeserializationError:
            return False
        return (job is not None and other.id != job.id and other.func_name == job.func_name
                and bool(other.args) and isinstance(other.args[-1], str) and not other.args[-1].startswith("+")
                and tuple(other.args[:-1]) == tuple(job.args[:-1])
                and (other.kwargs or {}) == (job.kwargs or {}) and origin_of(other.args[-1]) == origin_of(self.batch))

    def end(self) -> None:
        """Drop the carried batches and jobs: they were sent (or deferred, or parked) with this job's own."""
        for job, batch in self.taken:
            self.stored.done(self.flow.id, batch)
            try:
                job.delete(remove_from_queue=False)
            except ValueError:  # rq 2.12: an execution listed whose record expired (see bot/workers.py)
                job.connection.delete(job.key)
        if self.job is not None and self.taken:
            self.queue.connection.delete(carried_key(self.job.id))
