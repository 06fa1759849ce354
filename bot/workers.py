"""Run the workers, and put back on the queue what a pause or a dead worker left unfinished."""

from __future__ import annotations

import os
import socket

from rq import Worker
from rq.job import Job
from rq.registry import FailedJobRegistry, StartedJobRegistry

from bot import Accord
from bot.flows import Flow
from bot.rounds import queue_admitted
from bot.sending import BATCH, enqueue, enqueue_stored, queue_for


def run_worker(accord: Accord, *, burst: bool = False) -> None:
    """Work the queue; the scheduler in it starts deferred batches when their window opens."""
    accord.store.remember_versions(list(accord.flows.values()))  # the texts a proof names by their hash
    Worker([queue_for(accord)], connection=accord.store.redis).work(burst=burst, with_scheduler=True)


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
    return len(parked), requeue_interrupted(accord, flow) + queue_admitted(accord, flow)


def requeue_interrupted(accord: Accord, flow: Flow) -> int:
    """Queue again the flow's failed batches and those a dead worker held.

    Running a batch twice sends nothing twice: each number is claimed (or each content
    released) atomically before its send, and a claim whose send may have happened is
    reported, never retried.
    """
    queue = queue_for(accord)
    connection = accord.store.redis
    started, failed = StartedJobRegistry(queue=queue), FailedJobRegistry(queue=queue)
    count = 0
    for registry in (started, failed):
        for job in Job.fetch_many(registry.get_job_ids(), connection=connection):
            if job is None or not job.args or job.args[0] != flow.id:
                continue
            if registry is started and _worker_alive(job, accord):
                continue
            queue.enqueue(job.func, *job.args, job_timeout=job.timeout, result_ttl=86400, failure_ttl=30 * 86400)
            job.delete(remove_from_queue=False)  # and from its registry: it is not requeued twice
            count += 1
    return count


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
