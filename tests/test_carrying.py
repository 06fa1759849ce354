"""A job out of numbers carries on with its round's next queued batch, and only with its round's."""

from __future__ import annotations

import contextlib
import datetime as dt
import os
import signal
import subprocess
import time
from pathlib import Path

import pytest
from rq import SimpleWorker
from rq.registry import FinishedJobRegistry

from bot import create_app, rounds
from bot.carrying import SPARE
from bot.keys import batches_key, carried_key
from bot.rounds import Origin, start_round
from bot.sending import queue_for, send_requests
from bot.workers import broadcast
from tests.conftest import PARIS, SMS
from tests.test_rounds import accord, run, work  # noqa: F401  (shared fixtures)
from tests.test_workers import finish, resume, worker, worker_env  # noqa: F401  (shared fixtures)

NUMBERS = [f"+3361297{n:04d}" for n in range(45)]


def queue_round(accord, flow_id: str, numbers: list[str], tmp_path: Path, name: str = "contacts.csv",  # noqa: F811
                rate: float = 1000) -> None:
    path = tmp_path / name
    path.write_text("phone\n" + "\n".join(numbers) + "\n")
    origin = Origin("supporters", "", "", "test", path.name, "2026-12-01T09:00:00+00:00")
    start_round(accord, accord.flows[flow_id], path, origin, rate=rate)


@pytest.fixture(autouse=True)
def small_batches(monkeypatch: pytest.MonkeyPatch, clock) -> None:
    monkeypatch.setattr(rounds, "BATCH", 15)  # a round of 45 numbers is queued as 3 jobs
    clock.set(dt.datetime(2026, 12, 1, 15, 0, tzinfo=PARIS))


def kill_with_its_horses(process: subprocess.Popen) -> None:
    """SIGKILL a worker and the processes it forked to run jobs (each in a process group of its own), as a
    machine going down would: killed alone, a worker leaves its running job to finish by itself."""
    horses = [int(pid) for pid in os.listdir("/proc") if pid.isdigit() and _parent(pid) == process.pid]
    for pid in [*horses, process.pid]:
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGKILL)
    process.wait(timeout=10)


def _parent(pid: str) -> int:
    try:
        return int(Path(f"/proc/{pid}/stat").read_text().rpartition(")")[2].split()[1])
    except (OSError, IndexError, ValueError):  # gone meanwhile
        return 0


def finished_jobs(accord) -> int:  # noqa: F811
    return FinishedJobRegistry(queue=queue_for(accord)).count


def test_one_job_sends_its_rounds_queued_batches_without_stopping(accord, twilio, redis_client, tmp_path):  # noqa: F811
    queue_round(accord, "demo", NUMBERS, tmp_path)
    assert queue_for(accord).count == 3
    work(accord)
    assert sorted(m["to"] for m in twilio.messages) == NUMBERS  # each once
    # The first job carried the two others: they ended with it, their batches with its own.
    assert finished_jobs(accord) == 1 and queue_for(accord).count == 0
    assert redis_client.zcard(batches_key("demo")) == 0
    assert not list(redis_client.scan_iter(match=carried_key("*"))) and not list(redis_client.scan_iter("rq:job:*"))[1:]
    assert accord.store.verify_ledger("demo") is None


def test_a_job_carries_no_batch_of_another_import(accord, twilio, tmp_path):  # noqa: F811
    queue_round(accord, "demo", NUMBERS[:15], tmp_path, "first.csv")
    queue_round(accord, "demo", NUMBERS[15:30], tmp_path, "second.csv")  # the same flow, another import
    work(accord)
    assert finished_jobs(accord) == 2 and sorted(m["to"] for m in twilio.messages) == NUMBERS[:30]
    # Each claim names the import that queued its number.
    asks = {entry["phone"]: entry["event"] for _, entry in accord.store.ledger("demo") if entry["kind"] == "ask"}
    assert len({asks[phone] for phone in NUMBERS[:15]}) == 1 and len({asks[phone] for phone in NUMBERS[15:30]}) == 1
    assert asks[NUMBERS[0]] != asks[NUMBERS[15]]


def test_a_batch_sent_again_later_carries_no_fresh_batch(accord, twilio, tmp_path):  # noqa: F811
    queue_round(accord, "demo", NUMBERS[:30], tmp_path)
    queue = queue_for(accord)
    first = queue.jobs[0]
    queue.remove(first)  # the first batch, as if the provider had been too busy for it once: attempt 1
    queue.enqueue(send_requests, *first.args, attempt=1, job_timeout=first.timeout, at_front=True)
    work(accord)
    # Their numbers wait on different backoffs if the provider is busy again: each batch kept its job.
    assert finished_jobs(accord) == 2 and sorted(m["to"] for m in twilio.messages) == NUMBERS[:30]


def test_a_job_carries_no_batch_it_has_no_time_left_for(accord, twilio, tmp_path):  # noqa: F811
    queue_round(accord, "demo", NUMBERS[:30], tmp_path)
    queue = queue_for(accord)
    for job in queue.jobs:  # a minute each: no time for a second batch within the SPARE its end keeps
        queue.remove(job)
        queue.enqueue(send_requests, *job.args, job_timeout=int(SPARE))
    work(accord)
    assert finished_jobs(accord) == 2 and sorted(m["to"] for m in twilio.messages) == NUMBERS[:30]


def test_a_job_rq_cannot_read_at_the_head_of_the_queue_stops_no_batch(accord, twilio, tmp_path,  # noqa: F811
                                                                       redis_client):
    queue_round(accord, "demo", NUMBERS[:15], tmp_path)
    queue = queue_for(accord)
    # A job whose data this version cannot read (another application's, a damaged one) waits behind it.
    redis_client.hset("rq:job:unreadable", mapping={"data": b"not a job", "status": "queued", "origin": queue.name})
    queue.push_job_id("unreadable")
    SimpleWorker([queue], connection=redis_client).work(burst=True, max_jobs=1)
    assert sorted(m["to"] for m in twilio.messages) == NUMBERS[:15] and finished_jobs(accord) == 1
    assert queue.get_job_ids() == ["unreadable"]  # left where it was


def test_a_job_carries_no_batch_of_another_flow(accord, twilio, clock):  # noqa: F811
    flows = [accord.flows["demo"], accord.flows["presidentielle-2027"]]
    clock.set(dt.datetime(2026, 12, 1, 23, 30, tzinfo=PARIS))  # YES after hours: no content with the confirmation
    sms = SMS(create_app(accord.config, gateway=accord.gateway, clock=accord.store.clock).test_client())
    for flow, phones in zip(flows, (NUMBERS[:15], NUMBERS[15:30]), strict=True):
        for phone in phones:
            accord.store.claim(flow, phone, window_open=True)
            sms.send(phone, "oui", to=flow.sender)
    clock.set(dt.datetime(2026, 12, 2, 10, 0, tzinfo=PARIS))
    for flow in flows:  # content 1 of both flows: a job each, queued one after the other
        broadcast(accord, flow, 1)
    twilio.reset()
    work(accord)
    assert finished_jobs(accord) == 2
    # Each number got its own flow's content, from its own flow's sender.
    assert {m["to"]: (m["from"], m["body"]) for m in twilio.messages} == {
        phone: (flow.sender, flow.texts.content[0])
        for flow, phones in zip(flows, (NUMBERS[:15], NUMBERS[15:30]), strict=True) for phone in phones}


def test_the_batches_a_killed_worker_carried_go_back_on_the_queue(accord, twilio, worker_env, tmp_path,  # noqa: F811
                                                                  redis_client):
    # 40 texts a second: the second batch takes 0.4 s to send, and the kill lands while the first job carries it.
    queue_round(accord, "demo", NUMBERS, tmp_path, rate=40)
    twilio.delay(0.05)
    first = worker(worker_env, burst=False)
    deadline = time.monotonic() + 30
    while len(twilio.messages) < 20 and time.monotonic() < deadline:
        time.sleep(0.02)
    kill_with_its_horses(first)
    assert 20 <= len(twilio.messages) < 30
    assert queue_for(accord).count == 1  # the dead worker's job had taken the second job off the queue
    assert len(list(redis_client.scan_iter(match=carried_key("*")))) == 1

    resume(accord)
    sends = finish(twilio, worker_env)
    # Everyone asked but the claims in flight at the kill: the witness asks the provider about them.
    in_flight = {phone for phone, _, _ in accord.store.in_flight(accord.flows["demo"])}
    assert set(sends) | in_flight == set(NUMBERS) and set(NUMBERS[30:]) <= set(sends)
    assert not list(redis_client.scan_iter(match=carried_key("*")))
    assert accord.store.verify_ledger("demo") is None
