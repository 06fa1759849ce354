"""Nothing lost: numbers the provider was too busy for go again later, and workers pick up what dead ones left.

The provider answers 429 beyond the in-place retries: the claim goes back and the number goes again
later in the round, until it is asked. Workers killed in the middle of their batches (SIGKILL, real
processes): a new or a surviving worker picks their batches up by itself, and `round resume` requeues
them all, whatever RQ's registries hold; what the kills left in flight, the provider settles
(bot/witness.py). Everybody is asked exactly once.
"""

from __future__ import annotations

import datetime as dt
import json
import math
import os
import signal
import subprocess
import time
from collections import Counter
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
import redis
from rq import Worker
from rq.executions import Execution
from rq.job import Job, JobStatus
from rq.registry import FailedJobRegistry, ScheduledJobRegistry, StartedJobRegistry

from bot import Accord, create_app, rounds, sending, use, witness
from bot.batches import Batches
from bot.gateways.ovh import OvhGateway
from bot.gateways.twilio import TwilioGateway
from bot.rounds import Origin, start_round
from bot.sending import BUSY, LATER_AT_MOST, LATER_FIRST, LATER_LONGEST, RETRIES, SHUT, enqueue, queue_for
from bot.workers import PICK_UPS_AT_MOST, requeue_interrupted, resume
from tests.conftest import PARIS, SMS, TUESDAY_MORNING, Clock, OvhProvider
from tests.test_faults import ScriptedTwilio, finished_results, start_worker, worker_env
from tests.test_rounds import run, work

THROTTLED = [(429, 20429)] * (RETRIES + 1)  # refused in place, every time: the number must go again later
ORIGIN = Origin("supporters", "", "", "test", "contacts.csv", "2026-12-01T09:00:00+00:00")


@pytest.fixture
def accord(twilio_accord: Accord, twilio, clock: Clock) -> Accord:
    twilio.clock = clock  # the local server dates what it takes by the test's clock, as the workers do
    return twilio_accord  # sending through the real Twilio client to the local server


@pytest.fixture
def scripted() -> Iterator[ScriptedTwilio]:
    with ScriptedTwilio() as server:
        yield server


def numbers(count: int, block: int) -> list[str]:
    return [f"+336{block:04d}{n:04d}" for n in range(count)]


def contacts(tmp_path: Path, phones: list[str]) -> Path:
    path = tmp_path / "contacts.csv"
    path.write_text("phone\n" + "\n".join(phones) + "\n")
    return path


def held_back(accord: Accord) -> list[tuple[Job, float]]:
    """Return the batches held back for later, each with its wait in seconds, soonest first.

    RQ schedules to the whole second, down: the wait is rounded up to the one asked.
    """
    registry = ScheduledJobRegistry(queue=queue_for(accord))
    jobs = [job for job in Job.fetch_many(registry.get_job_ids(), connection=accord.store.redis) if job]
    waits = [(job, math.ceil((registry.get_scheduled_time(job) - job.created_at.replace(tzinfo=dt.UTC))
                             .total_seconds())) for job in jobs]
    return sorted(waits, key=lambda pair: pair[1])


def run_held_back(accord: Accord, clock: Clock) -> int:
    """Start the soonest batch held back once its time has come on the test's clock, as the scheduler
    would, and work the queue; return how many batches were held back."""
    waiting = held_back(accord)
    if waiting:
        job, wait = waiting[0]
        clock.advance(seconds=wait)
        ScheduledJobRegistry(queue=queue_for(accord)).requeue(job)
        work(accord)
    return len(waiting)


# -- The provider too busy: nothing lost, nothing twice ------------------------------------------------------------


@pytest.fixture
def busy_accord(config, clock: Clock, redis_client, scripted: ScriptedTwilio,
                monkeypatch: pytest.MonkeyPatch) -> Accord:
    """The services sending to a Twilio that throttles on cue, with the in-place retries not waiting."""
    monkeypatch.setattr(sending, "RETRY_PAUSE", 0.0)  # their backoff is tested in test_rounds
    gateway = TwilioGateway(scripted.account_sid, scripted.auth_token, api_url=scripted.base_url, timeout=2)
    accord: Accord = create_app(config, gateway=gateway, clock=clock).extensions["accord"]
    use(accord)  # what a worker process does once at start
    return accord


class BusyTwilio:
    """Twilio refusing given numbers with 429 on cue: what it took, and what it was asked."""

    def __init__(self, server: ScriptedTwilio) -> None:
        self.server = server

    def throttle(self, phones: list[str], times: int = RETRIES + 1) -> None:
        self.server.errors = {phone: [(429, 20429)] * times for phone in phones}

    def taken(self) -> list[str]:
        return [message["to"] for message in self.server.messages]

    def asked(self) -> list[str]:
        return [request["form"]["To"] for request in self.server.requests if request["method"] == "POST"]


class BusyOvh:
    """OVHcloud refusing given numbers with 429 on cue."""

    def __init__(self, server) -> None:
        self.server = server

    def throttle(self, phones: list[str], times: int = RETRIES + 1) -> None:
        self.server.errors = {phone: [(429, "Too many requests")] * times for phone in phones}

    def taken(self) -> list[str]:
        return [job["receiver"] for job in self.server.jobs]

    def asked(self) -> list[str]:
        return [json.loads(r["body"])["receivers"][0] for r in self.server.requests
                if r["method"] == "POST" and r["path"].endswith("/jobs")]


@pytest.fixture(params=["twilio", "ovh"])
def busy(request, config, clock: Clock, redis_client, monkeypatch: pytest.MonkeyPatch):
    """Each provider in turn, throttling on cue, with the in-place retries not waiting; and its services."""
    monkeypatch.setattr(sending, "RETRY_PAUSE", 0.0)  # their backoff is tested in test_rounds
    if request.param == "twilio":
        server = request.getfixturevalue("scripted")
        gateway = TwilioGateway(server.account_sid, server.auth_token, api_url=server.base_url, timeout=2)
        provider: BusyTwilio | BusyOvh = BusyTwilio(server)
    else:
        server = request.getfixturevalue("ovh_server")
        server.reset()
        config = OvhProvider(server).configure(config)
        gateway = OvhGateway(config.ovh, timeout=2)
        provider = BusyOvh(server)
    accord: Accord = create_app(config, gateway=gateway, clock=clock).extensions["accord"]
    use(accord)  # what a worker process does once at start
    return accord, provider


def test_a_text_whose_window_shuts_while_it_is_retried_is_given_back_and_goes_at_the_next_window(
        busy, clock: Clock, monkeypatch: pytest.MonkeyPatch):
    """Guard: `validity(...) < MIN_VALIDITY` in bot/sending.py's _send (at each attempt, not only when due)."""
    accord, provider = busy
    flow, voter = accord.flows["demo"], numbers(1, 1292)[0]
    clock.set(dt.datetime(2026, 12, 1, 22, 58, 30, tzinfo=PARIS))  # 90 s before the demo window shuts at 23:00
    provider.throttle([voter], times=1)
    gateway = accord.gateway_for(flow)
    send = gateway.send

    def slow(*args, **kwargs):  # each answer comes 31 s after its request, by the workers' clock
        try:
            return send(*args, **kwargs)
        finally:
            clock.advance(seconds=31)

    monkeypatch.setattr(gateway, "send", slow)
    enqueue(accord, "requests", flow, [voter])
    work(accord)
    assert provider.asked() == [voter] and provider.taken() == []  # no retry with 59 s left: neither held
    assert accord.store.state(flow, voter) == "new"  # by a provider past the window, nor lost as asked
    assert finished_results(accord) == {SHUT + ", deferred": 1}
    ((job, wait),) = held_back(accord)
    assert clock() + wait >= dt.datetime(2026, 12, 2, 7, 0, tzinfo=PARIS).timestamp()  # the next morning
    run_held_back(accord, clock)
    assert provider.taken() == [voter]  # asked once, in its window


def test_a_round_under_30_percent_throttling_asks_every_number_exactly_once(busy, clock: Clock, tmp_path: Path):
    accord, provider = busy
    flow = accord.flows["demo"]
    phones = numbers(200, 1290)
    throttled = [phone for index, phone in enumerate(phones) if index % 10 < 3]  # 30% of first attempts
    provider.throttle(throttled)
    start_round(accord, flow, contacts(tmp_path, phones), ORIGIN, rate=1000)
    work(accord)
    assert len(provider.taken()) == 140
    ((retry, wait),) = held_back(accord)  # the 60 throttled numbers, as one batch, a minute on
    assert retry.kwargs == {"attempt": 1} and abs(wait - LATER_FIRST) < 1
    assert {accord.store.state(flow, phone) for phone in throttled} == {"new"}  # claims given back
    while run_held_back(accord, clock):
        pass

    taken = Counter(provider.taken())
    assert taken == dict.fromkeys(phones, 1)  # every number asked, none twice
    posts = Counter(provider.asked())
    assert {posts[phone] for phone in throttled} == {RETRIES + 2}
    assert all(accord.store.state(flow, phone) == "asked" for phone in phones)
    story = [fields["event"].partition(":")[0] for _, fields in accord.store.ledger(flow.id)
             if fields.get("phone") == throttled[0]]
    assert story == ["ask", "send_failed", "release", "ask", "sent"]
    assert accord.store.funnel(flow)["sent"] == 200 and accord.store.verify_ledger(flow.id) is None


def test_a_number_refused_again_waits_longer_each_time_then_for_the_next_window(
        busy_accord: Accord, scripted: ScriptedTwilio, clock: Clock):
    accord, flow, voter = busy_accord, busy_accord.flows["demo"], numbers(1, 1291)[0]
    scripted.fail_to(voter, status=429, code=20429)  # throttled whatever comes
    enqueue(accord, "requests", flow, [voter])
    work(accord)
    waits = []
    for attempt in range(1, LATER_AT_MOST + 1):
        ((job, wait),) = held_back(accord)
        assert job.kwargs == {"attempt": attempt}
        waits.append(wait)
        clock.advance(seconds=wait)
        assert sending.send_requests(*job.args, **job.kwargs) == {
            BUSY + (", sent again later" if attempt < LATER_AT_MOST else ", deferred"): 1}
        job.delete()
    assert waits == [min(LATER_LONGEST, LATER_FIRST * 2 ** n) for n in range(LATER_AT_MOST)]
    ((job, wait),) = held_back(accord)  # tried enough in this window: the next one, counting afresh
    assert job.kwargs == {}
    opens = dt.datetime.fromtimestamp(clock(), PARIS).replace(hour=7, minute=0, second=0) + dt.timedelta(days=1)
    assert abs(wait - (opens.timestamp() - clock())) < 5
    assert accord.store.state(flow, voter) == "new" and scripted.messages == []


def test_a_retry_that_would_come_after_the_window_shuts_waits_for_its_opening(
        busy_accord: Accord, scripted: ScriptedTwilio, clock: Clock):
    accord, flow, voter = busy_accord, busy_accord.flows["demo"], numbers(1, 1292)[0]
    clock.set(dt.datetime(2026, 12, 1, 22, 58, 30, tzinfo=PARIS))  # a minute on, too late: demo shuts at 23:00
    scripted.errors = {voter: list(THROTTLED)}
    enqueue(accord, "requests", flow, [voter])
    work(accord)
    ((job, wait),) = held_back(accord)
    assert job.kwargs == {}
    assert abs(wait - (dt.datetime(2026, 12, 2, 7, 0, tzinfo=PARIS).timestamp() - clock())) < 5
    run_held_back(accord, clock)
    assert [message["to"] for message in scripted.messages] == [voter]
    assert accord.store.state(flow, voter) == "asked"


def test_content_the_provider_was_too_busy_for_is_given_back_and_sent_once_later(
        busy_accord: Accord, scripted: ScriptedTwilio, clock: Clock):
    accord, flow = busy_accord, busy_accord.flows["demo"]
    voter, other = numbers(2, 1293)
    clock.set(dt.datetime(2026, 12, 1, 23, 30, tzinfo=PARIS))  # YES after hours: confirmed, content left out
    sms = SMS(create_app(accord.config, gateway=accord.gateway, clock=clock).test_client())
    for phone in (voter, other):
        accord.store.claim(flow, phone, window_open=True)
        sms.send(phone, "oui")
    clock.set(dt.datetime(2026, 12, 2, 10, 0, tzinfo=PARIS))
    scripted.errors = {voter: list(THROTTLED)}
    assert run(accord, "content", "send", "demo").exit_code == 0
    work(accord)
    assert [message["to"] for message in scripted.messages] == [other]
    assert accord.store.funnel(flow)["content:1"] == 1  # given back: counted unsent
    while run_held_back(accord, clock):
        pass
    assert Counter(message["to"] for message in scripted.messages) == {voter: 1, other: 1}
    assert {message["body"] for message in scripted.messages} == {flow.texts.content[0]}
    story = [fields["event"] for _, fields in accord.store.ledger(flow.id) if fields.get("phone") == voter]
    assert story[-5:] == ["content:1", "send_failed", "give_back:1", "content:1", "sent"]
    assert accord.store.funnel(flow)["content:1"] == 2 and accord.store.verify_ledger(flow.id) is None
    run(accord, "content", "send", "demo")
    work(accord)
    assert len(scripted.messages) == 2  # nobody gets it twice


def test_content_is_given_back_only_while_its_release_holds(busy_accord: Accord):
    accord, flow, voter = busy_accord, busy_accord.flows["demo"], numbers(1, 1294)[0]
    accord.store.claim(flow, voter, window_open=True)
    accord.store.step([flow], voter, "yes", inbound=True, window_open=False)  # consented, content left out
    assert accord.store.release(flow, voter, 1) == "ok"
    assert accord.store.release(flow, voter, 1) == "already"  # the release is the claim
    assert accord.store.give_back(flow, voter, 1, "20429: Too Many Requests") is True
    assert accord.store.give_back(flow, voter, 1, "20429: Too Many Requests") is False  # nothing to give back
    assert [fields["event"] for _, fields in accord.store.ledger(flow.id)].count("give_back:1") == 1
    assert accord.store.release(flow, voter, 1) == "ok"


class RunningClock(Clock):
    """A clock that moves on a millisecond each time it is read, as time does between two numbers."""

    def __call__(self) -> float:
        self.now += 0.001
        return self.now


def test_numbers_held_back_for_the_same_moment_wait_in_one_batch_while_time_runs(
        config, redis_client, scripted: ScriptedTwilio, monkeypatch: pytest.MonkeyPatch):
    monkeypatch.setattr(sending, "RETRY_PAUSE", 0.0)
    gateway = TwilioGateway(scripted.account_sid, scripted.auth_token, api_url=scripted.base_url, timeout=2)
    accord: Accord = create_app(config, gateway=gateway, clock=RunningClock(TUESDAY_MORNING)).extensions["accord"]
    use(accord)
    busy, far = numbers(2, 1295), numbers(2, 1296)
    scripted.errors = {phone: list(THROTTLED) for phone in busy}
    # 10:00 in Paris, 05:00 in Guadeloupe: those two wait for 08:30 there.
    enqueue(accord, "requests", accord.flows["demo"], [*busy, *(f"{phone}/97110" for phone in far)])
    work(accord)
    held = {tuple(Batches(accord.store).read(*job.args) or ()): job.kwargs for job, _ in held_back(accord)}
    assert held == {tuple(busy): {"attempt": 1}, tuple(f"{phone}/97110" for phone in far): {}}


# -- Workers killed in the middle of their batches -------------------------------------------------------------------


def children(pid: int) -> list[int]:
    """Return the processes `pid` started that still run (its work horse, its scheduler)."""
    try:
        return [int(child) for child in Path(f"/proc/{pid}/task/{pid}/children").read_text().split()]
    except OSError:
        return []


def kill_hard(process: subprocess.Popen) -> None:
    """Kill a worker and the processes it started at once, as a crash of its machine would.

    The work horse runs a batch in a process group of its own, so it would outlive its worker.
    """
    process.send_signal(signal.SIGSTOP)  # no new horse meanwhile
    for pid in children(process.pid):
        try:
            os.kill(pid, signal.SIGKILL)
        except ProcessLookupError:  # it ended just now
            pass
    process.send_signal(signal.SIGKILL)
    process.wait(timeout=10)


def age_rq(client: redis.Redis, seconds: float) -> None:
    """Do to RQ's keys what `seconds` of waiting do: RQ dates them by the machine's clock, not the test's.

    Keys whose time to live runs out go (an execution's record after 90 s), the others keep the
    rest of it; the started jobs' heartbeats and the executions' lists fall that far behind.
    """
    for key in client.scan_iter("rq:*"):
        left = client.pttl(key)
        if 0 < left <= seconds * 1000:
            client.delete(key)
        elif left > 0:
            client.pexpire(key, int(left - seconds * 1000))
    for key in [b"rq:wip:" + sending.QUEUE.encode(), *client.scan_iter("rq:executions:*")]:
        for member, score in client.zrange(key, 0, -1, withscores=True):
            client.zadd(key, {member: score - seconds})


def wait_for(condition: Callable[[], bool], timeout: float) -> bool:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            return False
        time.sleep(0.02)
    return True


def started_jobs(accord: Accord) -> list[Job]:
    registry = StartedJobRegistry(queue=queue_for(accord))
    ids = [job_id for job_id, _ in registry.get_job_and_execution_ids(cleanup=False)]
    return [job for job in Job.fetch_many(ids, connection=accord.store.redis) if job]


class Workers:
    """Real worker processes (`python -m tests.worker_process`, the Procfile's worker on the test's clock)."""

    def __init__(self, env: dict[str, str], log: Path) -> None:
        self.env, self.log, self.started = env, log, []

    def start(self, *, burst: bool = False, pick_up_every: int | None = None) -> subprocess.Popen:
        env = self.env if pick_up_every is None else {**self.env, "TEST_PICK_UP_EVERY": str(pick_up_every)}
        self.started.append(start_worker(env, self.log, burst=burst))
        return self.started[-1]

    def ready(self, accord: Accord, count: int, *, pick_up_every: int | None = None) -> list[subprocess.Popen]:
        """Start `count` workers and wait until each listens on the queue."""
        crew = [self.start(pick_up_every=pick_up_every) for _ in range(count)]
        queue = queue_for(accord)
        assert wait_for(lambda: Worker.count(queue=queue) == count, timeout=120), self.log.read_text()[-3000:]
        return crew

    def run_burst(self) -> None:
        """Run a burst worker until the queue is empty (it picks up abandoned batches first)."""
        assert self.start(burst=True).wait(timeout=60) == 0, self.log.read_text()[-3000:]

    def holding(self, job: Job) -> subprocess.Popen:
        """Return the worker process running `job`."""
        pid = job.connection.hget(f"rq:worker:{job.worker_name}", "pid")
        return next(process for process in self.started if str(process.pid).encode() == pid)

    def stop(self) -> None:
        for process in self.started:
            if process.poll() is None:
                kill_hard(process)


@pytest.fixture
def workers(accord: Accord, config, clock: Clock, twilio, tmp_path: Path) -> Iterator[Workers]:
    crew = Workers(worker_env(config, twilio, clock()), tmp_path / "workers.log")
    yield crew
    crew.stop()


def crash_mid_round(accord: Accord, twilio, workers: Workers, phones: list[str],
                    monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> int:
    """Start a round of batches of 20, three workers sending them, and kill all three mid-batch; return
    how many batches they held."""
    monkeypatch.setattr(rounds, "BATCH", 20)
    crew = workers.ready(accord, 3)  # each takes a batch as it comes
    # Each send takes a while, and the three share a pace of 6 a second (sends in flight at once do
    # not make a batch any shorter than its slots), so the kills land mid-batch, even on a loaded machine.
    twilio.delay(0.5)
    start_round(accord, accord.flows["demo"], contacts(tmp_path, phones), ORIGIN, rate=6)
    try:
        # All three mid-batch, as a rule; a loaded machine may start one late: then those started.
        if not wait_for(lambda: len(started_jobs(accord)) == 3 and len(twilio.messages) >= 9, timeout=8):
            assert wait_for(lambda: started_jobs(accord) and len(twilio.messages) >= 3, timeout=120), \
                (len(twilio.messages), queue_for(accord).count, workers.log.read_text()[-3000:])
    finally:
        for process in crew:
            kill_hard(process)
    held = len(started_jobs(accord))
    assert held >= 1 and len(twilio.messages) < len(phones)
    twilio.delay(0)
    accord.store.set_round(accord.flows["demo"], rate="1000")  # the rest, at once
    return held


def asked_exactly_once(accord: Accord, twilio, workers: Workers, clock: Clock, phones: list[str],
                       sweep: Callable[[], object] | None = None) -> None:
    """Let the grace period pass, settle with the provider what the kills left in flight, and send what
    it gave back: then every number was asked exactly once, and each text is in the ledger with its sid.

    A kill between a claim and its request leaves the number claimed and unsent; a kill after the
    provider took the text, before it was recorded, leaves it sent and unrecorded. The batches
    picked up again send neither (the claim stands): the provider tells them apart (bot/witness.py).
    """
    flow = accord.flows["demo"]
    left = len(accord.store.in_flight(flow))
    clock.advance(seconds=witness.GRACE)
    settled = witness.sweep(accord) if sweep is None else sweep()
    print(f"\nin flight after the kills: {left}; settled: {settled}")
    workers.run_burst()
    assert Counter(message["to"] for message in twilio.messages) == dict.fromkeys(phones, 1)
    recorded = Counter((fields["sid"], fields["phone"]) for _, fields in accord.store.ledger(flow.id)
                       if fields.get("event") == "sent")
    assert recorded == Counter((message["sid"], message["to"]) for message in twilio.messages)
    assert accord.store.in_flight(flow) == []
    assert all(accord.store.state(flow, phone) == "asked" for phone in phones)
    assert accord.store.verify_ledger(flow.id) is None


@pytest.mark.slow
@pytest.mark.parametrize("later", [0, 100], ids=["at-once", "after-the-heartbeats-ran-out"])
def test_a_new_worker_picks_up_the_batches_killed_workers_left_without_round_resume(
        accord, twilio, workers: Workers, clock: Clock, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, later: int):
    phones = numbers(60, 1280)
    crash_mid_round(accord, twilio, workers, phones, monkeypatch, tmp_path)
    age_rq(accord.store.redis, later)  # 100 s: RQ's own housekeeping fails them as abandoned first
    workers.run_burst()
    asked_exactly_once(accord, twilio, workers, clock, phones)


@pytest.mark.slow
def test_round_resume_after_a_crash_requeues_every_abandoned_batch(
        accord, twilio, workers: Workers, clock: Clock, tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    phones = numbers(60, 1281)
    held = crash_mid_round(accord, twilio, workers, phones, monkeypatch, tmp_path)
    waiting = queue_for(accord).count
    # Resumed later than 90 s after the crash: the executions' records are gone, RQ still lists them.
    age_rq(accord.store.redis, 100)
    result = run(accord, "round", "resume", "demo")
    assert result.exit_code == 0 and f"{held} interrupted batch(es)" in result.output
    queue = queue_for(accord)
    assert not StartedJobRegistry(queue=queue).get_job_ids() and not FailedJobRegistry(queue=queue).get_job_ids()
    assert queue.count == held + waiting  # those never started wait in the queue as they were
    workers.run_burst()

    def resume_again() -> str:  # once the grace period passed, `round resume` settles what is in flight
        return run(accord, "round", "resume", "demo").output

    asked_exactly_once(accord, twilio, workers, clock, phones, resume_again)


@pytest.mark.slow
@pytest.mark.parametrize("killed", ["worker", "work horse"])
def test_a_running_worker_picks_up_a_batch_abandoned_after_it_started(
        accord, twilio, workers: Workers, clock: Clock, tmp_path: Path, killed: str):
    phones = numbers(40, 1282)
    workers.ready(accord, 2, pick_up_every=1)  # looking every second, for the test's sake
    twilio.delay(0.05)
    start_round(accord, accord.flows["demo"], contacts(tmp_path, phones), ORIGIN, rate=1000)
    assert wait_for(lambda: len(started_jobs(accord)) == 1 and len(twilio.messages) >= 10, timeout=120)
    holder = workers.holding(started_jobs(accord)[0])
    if killed == "worker":
        kill_hard(holder)
    else:  # the process sending the batch dies under its live worker (out of memory)
        (horse,) = [pid for pid in children(holder.pid) if os.getpgid(pid) == pid]  # its own process group
        os.kill(horse, signal.SIGKILL)
    twilio.delay(0)
    # Every number sent, but those the kill caught between their claim and their send: in flight.
    flow = accord.flows["demo"]
    assert wait_for(lambda: {message["to"] for message in twilio.messages}
                    | {phone for phone, _, _ in accord.store.in_flight(flow)} == set(phones)
                    and not started_jobs(accord) and not queue_for(accord).count, timeout=120), \
        workers.log.read_text()[-3000:]
    workers.stop()
    asked_exactly_once(accord, twilio, workers, clock, phones)


# -- The guards of picking up -------------------------------------------------------------------------------------


def abandon(accord: Accord, job: Job) -> None:
    """Mark `job` started by a worker that is no more, as one killed in the middle of it leaves it."""
    queue_for(accord).remove(job)
    with accord.store.redis.pipeline() as pipe:
        Execution.create(job, 90, pipeline=pipe, worker_name="gone")
        job.set_status(JobStatus.STARTED, pipeline=pipe)
        pipe.hset(job.key, "worker_name", "gone")
        pipe.execute()


def test_workers_pick_a_batch_up_a_few_times_then_leave_it_to_round_resume(accord):
    flow = accord.flows["demo"]
    enqueue(accord, "requests", flow, numbers(3, 1283))
    queue = queue_for(accord)
    for pick_up in range(1, PICK_UPS_AT_MOST + 1):
        (job,) = queue.get_jobs()
        abandon(accord, job)
        assert requeue_interrupted(accord, accord.flows, abandoned_only=True) == 1
        assert requeue_interrupted(accord, accord.flows, abandoned_only=True) == 0  # taken once
        (again,) = queue.get_jobs()
        assert again.meta == {"pick_ups": pick_up} and again.args == job.args
        assert not accord.store.redis.exists(job.key)  # the old job, and what RQ kept of its runs, gone
    abandon(accord, queue.get_jobs()[0])
    assert requeue_interrupted(accord, accord.flows, abandoned_only=True) == 0  # it keeps killing its workers
    assert resume(accord, flow) == (0, 1)  # a person decides


class FailingGateway:
    def send(self, *args: object, **kwargs: object) -> str:
        raise RuntimeError("a bug")


def test_workers_leave_a_batch_that_failed_by_itself_to_round_resume(accord):
    flow = accord.flows["demo"]
    gateway, accord.gateway = accord.gateway, FailingGateway()
    enqueue(accord, "requests", flow, numbers(2, 1284))
    work(accord)
    accord.gateway = gateway
    assert len(FailedJobRegistry(queue=queue_for(accord))) == 1
    assert requeue_interrupted(accord, accord.flows, abandoned_only=True) == 0
    assert resume(accord, flow) == (0, 1)
    work(accord)
    assert accord.store.state(flow, numbers(2, 1284)[1]) == "asked"
