"""Run the workers, and put back on the queue what a pause or a dead worker left unfinished."""

from __future__ import annotations

import logging
import os
import socket
from collections.abc import Collection

from redis.exceptions import WatchError
from rq import Queue, Worker
from rq.job import Job
from rq.registry import BaseRegistry, FailedJobRegistry, StartedJobRegistry

from bot import Accord, archivist, compaction, witness
from bot.flows import Flow
from bot.keys import carried_key
from bot.rounds import queue_admitted
from bot.sending import BATCH, enqueue, enqueue_stored, queue_for

PICK_UP_EVERY = 300  # seconds between a worker's looks for batches that dead workers abandoned
# Times workers pick the same batch up by themselves: one that kills its worker each time (memory)
# is left, after that, for `round resume` and a person to look at.
PICK_UPS_AT_MOST = 3
# What RQ says of a job whose worker died: its heartbeat ran out (StartedJobRegistry.cleanup), or
# the process running it was killed under a live worker.
ABANDONED = ("AbandonedJobError", "Work-horse terminated unexpectedly")
log = logging.getLogger(__name__)


class SendingWorker(Worker):
    """An RQ worker that also picks up the batches dead workers abandoned, settles with the provider
    the claims they left in flight (bot/witness.py), archives the ledger's older entries
    (bot/archivist.py), and has Redis rewrite its files after the erasures nobody waited for
    (bot/compaction.py): at start, then every few minutes."""

    def __init__(self, accord: Accord, *, pick_up_every: int = PICK_UP_EVERY,
                 archive_above: int = archivist.ARCHIVE_ABOVE, archive_keep: int = archivist.ARCHIVE_KEEP) -> None:
        # An idle worker wakes when its wait for a job times out, 15 s short of its time to live.
        super().__init__([queue_for(accord)], connection=accord.store.redis, maintenance_interval=pick_up_every,
                         worker_ttl=pick_up_every + 15)
        self.accord = accord
        self.archive_above, self.archive_keep = archive_above, archive_keep

    def run_maintenance_tasks(self) -> None:
        """Do RQ's housekeeping (which fails the jobs whose heartbeat ran out), then pick up abandoned batches."""
        super().run_maintenance_tasks()
        picked = requeue_interrupted(self.accord, self.accord.flows, abandoned_only=True)
        if picked:
            log.warning("picked up %d batch(es) abandoned by a dead worker", picked)
        witness.sweep(self.accord)
        archivist.keep_up(self.accord, above=self.archive_above, keep=self.archive_keep)
        compaction.keep_up(self.accord.store.redis, self.accord.store.clock)


def run_worker(accord: Accord, *, burst: bool = False, pick_up_every: int = PICK_UP_EVERY) -> None:
    """Work the queue; the scheduler in it starts deferred batches when their window opens."""
    accord.store.remember_versions(list(accord.flows.values()))  # the texts a proof names by their hash
    SendingWorker(accord, pick_up_every=pick_up_every).work(burst=burst, with_scheduler=True)


def broadcast(accord: Accord, flow: Flow, message: int) -> tuple[int, int]:
    """Queue content `message` for every consented number; return (numbers, batches).

    Each number goes with its calendar region ("phone/A"), so the worker holds it on its own days.
    """
    numbers = batches = 0
    batch: list[str] = []
    for phone, region in accord.store.recipients(flow, "consented"):
        batch.append(f"{phone}/{region}" if region else phone)
        if len(batch) == BATCH:
            enqueue(accord, "content", flow, batch, message)
            numbers, batches, batch = numbers + len(batch), batches + 1, []
    if batch:
        enqueue(accord, "content", flow, batch, message)
        numbers, batches = numbers + len(batch), batches + 1
    return numbers, batches


def resume(accord: Accord, flow: Flow) -> tuple[int, int]:
    """Unpause the flow and queue again its parked and interrupted batches; return both counts.

    Interrupted: those a dead worker held or that failed, and those an import admitted but was
    cut short before queueing.
    """
    accord.store.unpause(flow)
    parked = accord.store.unpark(flow)
    for work in parked:
        kind, message, batch = work.split("|", 2)
        if batch.startswith("+"):  # parked by an earlier version, with its numbers: stored now
            enqueue(accord, kind, flow, batch.split(","), int(message))
        else:
            enqueue_stored(accord, kind, flow, [batch], int(message))
    return len(parked), requeue_interrupted(accord, [flow.id]) + queue_admitted(accord, flow)


def requeue_interrupted(accord: Accord, flow_ids: Collection[str], *, abandoned_only: bool = False) -> int:
    """Queue again the batches of these flows that a dead worker held, or that failed; return how many.

    With `abandoned_only`, as workers do by themselves: only those whose worker died, each at most
    PICK_UPS_AT_MOST times. Running a batch twice sends nothing twice: each number is claimed (or
    each content released) atomically before its send, and a claim whose send may have happened
    is reported, never retried.

    RQ's registries are read as they are stored, never through RQ's cleanup nor an execution: in
    rq 2.12, an execution listed after its record expired (90 s after its worker died) makes
    `Job.delete` raise ValueError. An entry whose job is gone is dropped.
    """
    wanted = set(flow_ids)
    queue, connection = queue_for(accord), accord.store.redis
    started, failed = StartedJobRegistry(queue=queue), FailedJobRegistry(queue=queue)
    entries = [(started, f"{job_id}:{execution_id}", job_id)
               for job_id, execution_id in started.get_job_and_execution_ids(cleanup=False)]
    entries += [(failed, job_id, job_id) for job_id in failed.get_job_ids(cleanup=False)]
    jobs = Job.fetch_many([job_id for _, _, job_id in entries], connection=connection)
    count = 0
    for (registry, entry, _), job in zip(entries, jobs, strict=True):
        if job is None:  # its job expired or was deleted: nothing to run
            connection.zrem(registry.key, entry)
            continue
        if not job.args or job.args[0] not in wanted:
            continue
        if registry is started and _worker_alive(job, accord):
            continue
        pick_ups = int(job.meta.get("pick_ups", 0)) + 1 if abandoned_only else 0
        if abandoned_only and (pick_ups > PICK_UPS_AT_MOST or registry is failed and not _abandoned(job)):
            continue
        if _take_over(queue, registry, entry, job, pick_ups):
            _forget(job)
            count += 1
    return count


def _take_over(queue: Queue, registry: BaseRegistry, entry: str, job: Job, pick_ups: int) -> bool:
    """Queue a new job for the batch `entry` of `registry` names, and take the entry out, in one transaction.

    The jobs it had taken on from the queue go back on it.

    False if another process took it first (two workers starting together, a resume meanwhile).
    """
    data = Queue.prepare_data(job.func_name, job.args, job.kwargs, timeout=job.timeout, result_ttl=86400,
                              failure_ttl=30 * 86400, meta={"pick_ups": pick_ups} if pick_ups else None)
    carried = carried_key(job.id)
    with queue.connection.pipeline() as pipe:
        while True:
            try:
                pipe.watch(registry.key, carried)
                if pipe.zscore(registry.key, entry) is None:
                    return False
                taken = pipe.lrange(carried, 0, -1)  # jobs it took off the queue (bot/carrying.py): back on it
                pipe.multi()
                pipe.zrem(registry.key, entry)
                queue.enqueue_many([data], pipeline=pipe)
                for job_id in taken:
                    queue.push_job_id(job_id.decode(), pipeline=pipe)
                pipe.delete(carried)
                pipe.execute()
                return True
            except WatchError:  # the registry moved (a heartbeat, a job starting): look again
                continue


def _forget(job: Job) -> None:
    """Delete a job whose batch a new job now carries, with what RQ keeps of its runs."""
    try:
        job.delete(remove_from_queue=False)
    except ValueError:  # rq 2.12: a run still listed whose record expired (Execution.refresh)
        job.connection.delete(job.key, job.execution_registry.key)


def _abandoned(job: Job) -> bool:
    """Say whether RQ failed the job because the worker running it died."""
    result = job.latest_result()
    return result is not None and any(reason in (result.exc_string or "") for reason in ABANDONED)


def _worker_alive(job: Job, accord: Accord) -> bool:
    """Say whether the worker holding `job` still lives (a dead one on this host is known at once)."""
    if not job.worker_name:
        return False
    worker = Worker.find_by_key(Worker.redis_worker_namespace_prefix + job.worker_name,
                                connection=accord.store.redis)
    if worker is None:
        return False
    if worker.hostname == socket.gethostname() and worker.pid:
        try:
            os.kill(worker.pid, 0)
        except ProcessLookupError:
            return False
        except PermissionError:
            return True
    return True
