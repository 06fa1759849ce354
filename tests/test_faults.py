"""Faults in the middle of a round: Redis killed and restarted, Twilio throttling, failing and stalling.

Each test accounts for every number: asked exactly once, or reported with what is known of it,
and never asked twice.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import redis
from flask.testing import FlaskClient
from rq import SimpleWorker
from rq.job import Job
from rq.registry import FinishedJobRegistry, ScheduledJobRegistry, StartedJobRegistry

from bot import Accord, create_app, machine, use
from bot.config import Config
from bot.embedded import spawn
from bot.flows import Flow
from bot.gateways.twilio import TwilioGateway
from bot.rounds import Origin, start_round
from bot.sending import LATER_FIRST, STORE_PATIENCE, ask, queue_for
from bot.store import Store
from bot.workers import resume
from tests.conftest import ROOT, SMS, TOKEN, TUESDAY_MORNING, Clock, new_sid
from tests.twilio_server import TwilioServer, _error, _Handler

pytestmark = pytest.mark.slow
STATES = set(machine.STATES)
ORIGIN = Origin("supporters", "", "", "test", "contacts.csv", "2026-12-01T09:00:00+00:00")
QUICK = 2.0  # seconds: the most a webhook request may take to say the store is away


def numbers(count: int, block: int) -> list[str]:
    return [f"+336{block:04d}{n:04d}" for n in range(count)]


def contacts(tmp_path: Path, phones: list[str], name: str = "contacts.csv") -> Path:
    path = tmp_path / name
    path.write_text("phone\n" + "\n".join(phones) + "\n")
    return path


class RedisServer:
    """A redis-server of the test's own, on a socket in its directory, that can be killed and restarted."""

    def __init__(self, directory: Path) -> None:
        self.directory = directory
        self.socket = directory / "redis.sock"
        self.url = f"unix://{self.socket}"
        self.process: subprocess.Popen | None = None

    def start(self) -> RedisServer:
        """Start it on its directory (replaying its append-only file) and wait until it answers."""
        self.process, _ = spawn(self.directory)
        client = self.client()
        # Every acknowledged write is on disk before its answer: a SIGKILL then loses nothing acknowledged.
        client.config_set("appendfsync", "always")
        client.close()
        return self

    def client(self) -> redis.Redis:
        return redis.Redis.from_url(self.url, socket_timeout=5)

    def kill(self) -> None:
        """Kill it the hard way (no shutdown, no final save): what a crash or an OOM kill does."""
        assert self.process is not None
        self.process.send_signal(signal.SIGKILL)
        self.process.wait(timeout=10)

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.send_signal(signal.SIGCONT)  # in case a test left it frozen
            self.process.terminate()
            try:
                self.process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()


@pytest.fixture
def own_redis(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RedisServer]:
    """A Redis for this test alone: the session's is never killed."""
    server = RedisServer(tmp_path_factory.mktemp("own-redis")).start()
    yield server
    server.stop()


class _PromptHandler(_Handler):
    # Headers and body leave in two writes: with Nagle on, each answer waits ~40 ms for the client's ACK.
    disable_nagle_algorithm = True


class PromptTwilio(TwilioServer):
    """The local Twilio server, answering without the 40 ms Nagle/delayed-ACK stall on kept-alive connections."""

    handler = _PromptHandler


@pytest.fixture
def twilio() -> Iterator[TwilioServer]:
    with PromptTwilio() as server:
        yield server


def states_parse(redis_client: redis.Redis, flow: Flow) -> Counter[str]:
    """Check every state record of the flow is whole; return how many numbers are in each state."""
    states: Counter[str] = Counter()
    for phone, state, asked_at, touched in Store(redis_client, b"-").records(flow):  # raises on a torn record
        assert state in STATES and 0 < asked_at <= touched or state == "new", (phone, state, asked_at, touched)
        states[state] += 1
    return states


def funnel_matches(accord: Accord, flow: Flow, states: Counter[str]) -> None:
    """Check the funnel's per-state counters say what the state records say."""
    funnel = accord.store.funnel(flow)
    for state in STATES - {"new"}:
        assert funnel.get(state, 0) == states[state], (state, funnel, states)


def events(accord: Accord, flow: Flow) -> dict[str, list[dict[str, str]]]:
    """Return the flow's ledger entries by phone."""
    by_phone: dict[str, list[dict[str, str]]] = {}
    for _, fields in accord.store.ledger(flow.id):
        by_phone.setdefault(fields.get("phone", ""), []).append(fields)
    return by_phone


def worker_env(config: Config, twilio: TwilioServer, now: float) -> dict[str, str]:
    return {**os.environ, "PYTHONPATH": str(ROOT), "TEST_FLOWS_DIR": str(config.flows_dir),
            "TEST_INSTANCE_DIR": str(config.instance_dir), "TEST_SUPPRESSION_KEY": config.suppression_key.decode(),
            "TEST_AUTH_TOKEN": TOKEN, "TEST_REDIS_URL": config.redis_url or "", "TEST_TWILIO_SID": twilio.account_sid,
            "TEST_TWILIO_TOKEN": twilio.auth_token, "TEST_TWILIO_URL": twilio.base_url, "TEST_NOW": str(now)}


def start_worker(env: dict[str, str], log: Path, *, burst: bool) -> subprocess.Popen:
    """Start `python -m tests.worker_process`: the Procfile's worker, on the test's clock and Twilio."""
    with open(log, "ab") as output:
        return subprocess.Popen([sys.executable, "-m", "tests.worker_process"], cwd=ROOT,
                                env={**env, "TEST_BURST": "1" if burst else "0"}, stdout=output, stderr=output)


def wait_for(condition, timeout: float, step: float = 0.01) -> bool:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            return False
        time.sleep(step)
    return True


def timed(call) -> tuple[Any, float]:
    began = time.monotonic()
    result = call()
    return result, time.monotonic() - began


class Replier(threading.Thread):
    """Answer "oui" from each number some sends after its consent request went out, as voters do."""

    LAG = 10  # sends

    def __init__(self, client: FlaskClient, phones: list[str], twilio: TwilioServer) -> None:
        super().__init__(daemon=True)
        self.sms, self.phones, self.twilio = SMS(client), phones, twilio
        self.sent: list[tuple[str, str, int]] = []  # phone, MessageSid, HTTP status
        self.hurry = threading.Event()  # answer every number already asked, without lag
        self.done = threading.Event()

    def _asked(self, index: int) -> bool:
        asked = {message["to"] for message in list(self.twilio.messages)}
        later = self.phones[index + self.LAG] if index + self.LAG < len(self.phones) else None
        return later in asked or (self.hurry.is_set() and self.phones[index] in asked)

    def run(self) -> None:
        for index, phone in enumerate(self.phones):
            wait_for(lambda index=index: self.done.is_set() or self._asked(index), timeout=60)
            if self.done.is_set():
                return
            sid = new_sid()
            self.sent.append((phone, sid, self.sms.send(phone, "oui", sid=sid).status_code))

    def stop(self) -> None:
        self.done.set()
        self.join(timeout=10)


# -- Redis killed in the middle of a round, then restarted on its append-only file ------------------------------


def test_redis_killed_mid_round_loses_nothing_and_the_round_finishes_asking_each_number_once(
        own_redis: RedisServer, twilio: TwilioServer, tmp_path: Path):
    config = Config(flows_dir=ROOT / "flows", instance_dir=tmp_path / "instance", suppression_key=b"k" * 32,
                    auth_token=TOKEN, redis_url=own_redis.url)
    clock = Clock(TUESDAY_MORNING)
    gateway = TwilioGateway(twilio.account_sid, twilio.auth_token, api_url=twilio.base_url, timeout=2)
    app = create_app(config, gateway=gateway, clock=clock)
    accord: Accord = app.extensions["accord"]
    use(accord)
    flow = accord.flows["demo"]
    phones = numbers(200, 1297)
    # One text at a time, as fast as a send lasts: the kill most likely lands during a send, rarely
    # during a claim (a claim Redis ran, its answer lost with the kill, leaves its number unsent).
    start_round(accord, flow, contacts(tmp_path, phones), ORIGIN, rate=40)
    twilio.delay(0.02)  # each send takes a while
    env, log = worker_env(config, twilio, clock()), tmp_path / "worker.log"
    first = start_worker(env, log, burst=False)
    # Voters answer while it all happens: their state moves must come back whole too.
    replies = Replier(app.test_client(), phones[:60], twilio)
    replies.start()
    try:
        assert wait_for(lambda: len(twilio.messages) >= 60, timeout=30), log.read_text()[-3000:]
        own_redis.kill()
        replies.hurry.set()
        at_kill = len(twilio.messages)

        # While Redis is away: every webhook answers 503 at once, so Twilio's retry brings the text back.
        client: FlaskClient = app.test_client()
        sms = SMS(client)
        took = []
        for phone in phones[:10]:
            response, seconds = timed(lambda phone=phone: sms.send(phone, "oui"))
            assert response.status_code == 503
            took.append(seconds)
            response, seconds = timed(lambda: client.get("/healthz"))
            assert (response.status_code, response.get_json()) == (503, {"redis": "unavailable"})
            took.append(seconds)
            response, seconds = timed(lambda phone=phone: sms.status(new_sid(), "delivered", to=phone))
            assert response.status_code == 503
            took.append(seconds)
        print(f"\nRedis killed: 503 in {1000 * max(took):.1f} ms at worst ({len(took)} requests, "
              f"median {1000 * sorted(took)[len(took) // 2]:.2f} ms)")
        assert max(took) < QUICK
        time.sleep(1.0)  # long enough for voters' answers to meet the closed door too
        assert len(twilio.messages) <= at_kill + 1  # at most the send that was already in flight

        own_redis.start()  # the same directory: it replays its append-only file
        twilio.delay(0)
        # The worker either carries on once Redis is back, or died with its connection (a supervisor restarts it).
        started = StartedJobRegistry(queue=queue_for(accord))
        wait_for(lambda: first.poll() is not None or not (started.count or queue_for(accord).count), timeout=30)
    finally:
        replies.stop()
        first.kill()
        first.wait(timeout=10)
    print(f"first worker: {'exited ' + str(first.returncode) if first.returncode != -9 else 'survived'}; "
          f"replies: {Counter(status for _, _, status in replies.sent)}")

    # Nothing half-written: the chain verifies, every state record is whole, the funnel agrees with them.
    assert accord.store.verify_ledger(flow.id) is None
    funnel_matches(accord, flow, states_parse(own_redis.client(), flow))

    parked, interrupted = resume(accord, flow)
    print(f"resume: {parked} parked, {interrupted} interrupted batch(es) queued again")
    second = start_worker(env, log, burst=True)
    assert second.wait(timeout=60) == 0, log.read_text()[-3000:]
    # Twilio retries each text that got a 503 (same MessageSid): now each is taken, once.
    sms = SMS(app.test_client())
    for phone, sid, status in replies.sent:
        if status != 200:
            assert sms.send(phone, "oui", sid=sid).status_code == 200
    answered = {phone for phone, _, _ in replies.sent}
    inbound = Counter(fields["sid"] for entries in events(accord, flow).values() for fields in entries
                      if fields["event"].startswith("in:"))
    assert inbound == Counter({sid: 1 for _, sid, _ in replies.sent})

    sends = Counter(message["to"] for message in twilio.messages)
    assert max(sends.values()) == 1, "a number was asked twice"
    assert sorted(sends) == phones
    states = states_parse(own_redis.client(), flow)
    assert states == {"asked": 200 - len(answered), "consented": len(answered)}
    assert all(accord.store.state(flow, phone) == "consented" for phone in answered)
    funnel_matches(accord, flow, states)
    assert accord.store.verify_ledger(flow.id) is None
    # Every text Twilio took is in the ledger with its message id: none went out unrecorded.
    recorded = {fields["sid"]: phone for phone, entries in events(accord, flow).items()
                for fields in entries if fields["event"] == "sent"}
    assert recorded == {message["sid"]: message["to"] for message in twilio.messages}
    assert accord.store.funnel(flow)["sent"] == 200


def test_a_frozen_redis_gets_503_within_one_socket_timeout_and_the_retried_text_counts_once(
        own_redis: RedisServer, tmp_path: Path):
    config = Config(flows_dir=ROOT / "flows", instance_dir=tmp_path / "instance", suppression_key=b"k" * 32,
                    auth_token=TOKEN, redis_url=own_redis.url)
    app = create_app(config, clock=Clock(TUESDAY_MORNING))
    accord: Accord = app.extensions["accord"]
    flow = accord.flows["demo"]
    voter = numbers(1, 1298)[0]
    accord.store.claim(flow, voter, window_open=True)
    client = app.test_client()
    sms, sid = SMS(client), new_sid()
    assert own_redis.process is not None
    own_redis.process.send_signal(signal.SIGSTOP)  # alive but not answering: a stall, a swap storm
    try:
        response, inbound_took = timed(lambda: sms.send(voter, "oui", sid=sid))
        assert response.status_code == 503
        response, health_took = timed(lambda: client.get("/healthz"))
        assert (response.status_code, response.get_json()) == (503, {"redis": "unavailable"})
        took = [inbound_took, health_took]
        print(f"\nRedis frozen: 503 in {max(took):.2f} s at worst ({', '.join(f'{t:.2f}' for t in took)})")
        # One socket timeout (2 s), never one per retry: well inside Twilio's 15 s.
        assert max(took) < QUICK + 0.5
    finally:
        own_redis.process.send_signal(signal.SIGCONT)
    # The frozen server may still run what it had received; Twilio's retry (same MessageSid) counts once.
    assert sms.send(voter, "oui", sid=sid).status_code == 200
    inbound = [fields for _, fields in accord.store.ledger(flow.id) if fields["event"].startswith("in:")]
    assert [fields["sid"] for fields in inbound] == [sid]
    assert accord.store.state(flow, voter) == "consented"
    assert accord.store.verify_ledger(flow.id) is None


class DyingStoreGateway:
    """A gateway whose send succeeds just as Redis dies: the text went out, and the store cannot hear of it."""

    def __init__(self, server: RedisServer) -> None:
        self.server, self.sids, self.armed = server, [], True

    def send(self, to: str, body: str, **options: object) -> str:
        if self.armed:
            self.server.kill()
        self.sids.append(new_sid())
        return self.sids[-1]


def own_accord(server: RedisServer, tmp_path: Path, gateway: DyingStoreGateway) -> Accord:
    config = Config(flows_dir=ROOT / "flows", instance_dir=tmp_path / "instance", suppression_key=b"k" * 32,
                    auth_token=TOKEN, redis_url=server.url)
    return create_app(config, gateway=gateway, clock=Clock(TUESDAY_MORNING)).extensions["accord"]


def test_a_text_that_went_out_as_redis_died_is_recorded_once_redis_is_back(own_redis: RedisServer,
                                                                            tmp_path: Path):
    gateway = DyingStoreGateway(own_redis)
    accord = own_accord(own_redis, tmp_path, gateway)
    flow, voter = accord.flows["demo"], numbers(1, 1296)[0]
    waits: list[float] = []

    def sleep(seconds: float) -> None:
        waits.append(seconds)
        if len(waits) == 3:
            own_redis.start()

    assert ask(accord, flow, voter, sleep=sleep) == "sent"
    entries = [fields for _, fields in accord.store.ledger(flow.id)]
    assert [(f["event"], f["sid"]) for f in entries] == [("ask", ""), ("sent", gateway.sids[0])]
    assert accord.store.funnel(flow)["sent"] == 1
    # Recording it again (an answer lost with the connection, then a retry) logs nothing twice.
    accord.store.record_sent(flow, voter, gateway.sids[0], flow.texts.consent_request)
    assert len(accord.store.ledger(flow.id)) == 2 and accord.store.funnel(flow)["sent"] == 1
    assert accord.store.message_status(gateway.sids[0]) == "queued"
    assert accord.store.verify_ledger(flow.id) is None


def test_a_text_that_went_out_while_redis_stayed_away_is_logged_by_sid_and_never_resent(
        own_redis: RedisServer, tmp_path: Path, caplog: pytest.LogCaptureFixture):
    gateway = DyingStoreGateway(own_redis)
    accord = own_accord(own_redis, tmp_path, gateway)
    flow, voter = accord.flows["demo"], numbers(1, 1295)[0]
    waits: list[float] = []
    with pytest.raises(redis.ConnectionError):
        ask(accord, flow, voter, sleep=waits.append)
    assert STORE_PATIENCE <= sum(waits) < STORE_PATIENCE + 10 and max(waits) <= 5
    assert f"message {gateway.sids[0]} went out but Redis is away" in caplog.text

    own_redis.start()
    gateway.armed = False
    assert ask(accord, flow, voter) == "already asked"  # its claim was on disk before the send
    assert len(gateway.sids) == 1  # never sent again
    assert accord.store.state(flow, voter) == "asked"
    assert accord.store.verify_ledger(flow.id) is None


# -- Twilio throttling, failing and stalling during a round ----------------------------------------------------------


class ScriptedTwilio(PromptTwilio):
    """A Twilio server whose answers follow a script: errors for given numbers, late answers, a 429 burst."""

    def __init__(self) -> None:
        super().__init__()
        self.errors: dict[str, list[tuple[int, int]]] = {}  # phone -> (status, code) for its next POSTs
        self.late: dict[str, float] = {}  # phone -> seconds its (accepted) message's answer is held
        self.burst: tuple[int, int] | None = None  # after this many messages, answer 429 to the next N POSTs

    def _create(self, form: dict[str, str]) -> tuple[int, dict[str, Any]]:
        to = form.get("To", "")
        with self._lock:
            script = self.errors.get(to)
            fault = script.pop(0) if script else None
            if self.burst and len(self.messages) >= self.burst[0]:
                self._fail_next.extend([(429, 20429, None)] * self.burst[1])
                self.burst = None
        if fault:
            return _error(*fault)
        status, payload = super()._create(form)
        if status == 201 and to in self.late:
            time.sleep(self.late[to])  # the message is taken; the answer comes after the client gave up
        return status, payload


@pytest.fixture
def scripted() -> Iterator[ScriptedTwilio]:
    with ScriptedTwilio() as server:
        yield server


def finished_results(accord: Accord) -> Counter[str]:
    """Add up what every finished job of the queue returned."""
    registry = FinishedJobRegistry(queue=queue_for(accord))
    total: Counter[str] = Counter()
    for job in Job.fetch_many(registry.get_job_ids(), connection=accord.store.redis):
        if job is not None:
            total.update(job.return_value() or {})
    return total


def test_twilio_throttling_errors_and_timeouts_are_each_accounted_for_and_nobody_is_asked_twice(
        config: Config, clock: Clock, redis_client, scripted: ScriptedTwilio, tmp_path: Path):
    gateway = TwilioGateway(scripted.account_sid, scripted.auth_token, api_url=scripted.base_url, timeout=1.0)
    accord: Accord = create_app(config, gateway=gateway, clock=clock).extensions["accord"]
    use(accord)  # what a worker process does once at start
    flow = accord.flows["demo"]
    phones = numbers(200, 1299)
    throttled_thrice, throttled_out = phones[20], phones[30]
    failed = {phones[40]: (500, 20500), phones[41]: (500, 20500), phones[50]: (503, 20503)}
    slow = {phones[60], phones[61]}
    scripted.errors = {throttled_thrice: [(429, 20429)] * 3, throttled_out: [(429, 20429)] * 4,
                       **{phone: [fault] for phone, fault in failed.items()}}
    scripted.late = dict.fromkeys(slow, 2.5)  # well past the gateway's timeout
    scripted.burst = (100, 2)  # for a while, Twilio throttles whatever comes
    path = contacts(tmp_path, phones)

    began = time.monotonic()
    start_round(accord, flow, path, ORIGIN, rate=1000)
    SimpleWorker([queue_for(accord)], connection=accord.store.redis).work(burst=True)
    seconds = time.monotonic() - began

    # What Twilio saw, number by number.
    posts = Counter(request["form"]["To"] for request in scripted.requests if request["method"] == "POST")
    taken = Counter(message["to"] for message in scripted.messages)
    burst_victims = [phone for phone, count in posts.items() if count > 1 and phone not in scripted.errors]
    # The burst's two 429s fall on one number, or on two sent at the same time; each is then taken.
    assert sum(posts[phone] - 1 for phone in burst_victims) == 2 and set(burst_victims) <= set(taken)
    unknown = set(failed) | slow
    assert max(taken.values()) == 1  # nobody asked twice
    assert set(taken) == set(phones) - set(failed) - {throttled_out}
    assert posts[throttled_thrice] == 4 and posts[throttled_out] == 4  # backoff: 3 retries, no more
    assert all(posts[phone] == 1 for phone in unknown)  # a send that may have gone is never retried

    # What the jobs reported, what the ledger and funnel say: the same story.
    assert finished_results(accord) == Counter({
        "sent": 200 - len(unknown) - 1, "claimed, outcome unknown": len(unknown),
        "not sent, provider busy, sent again later": 1})
    by_phone = events(accord, flow)
    # A claim's event names the import that queued the number ("ask:ID"): its kind is what counts here.
    story = {phone: [fields["event"].partition(":")[0] if fields["event"].startswith("ask") else fields["event"]
                     for fields in by_phone.get(phone, [])] for phone in phones}
    for phone in phones:
        if phone in unknown:
            assert story[phone] == ["ask", "send_failed"], phone
            assert accord.store.state(flow, phone) == "asked"  # claimed for good: never asked again
        elif phone == throttled_out:
            assert story[phone] == ["ask", "send_failed", "release"]
            assert by_phone[phone][1]["text"].startswith("20429:")
            assert accord.store.state(flow, phone) == "new"  # certainly not sent: given back, to go again later
        else:
            assert story[phone] == ["ask", "sent"], phone
    failures = {phone: by_phone[phone][1]["text"] for phone in unknown}
    assert {phone: text.split(":")[0] for phone, text in failures.items() if phone in failed} == {
        phone: str(code) for phone, (_, code) in failed.items()}
    assert all(failures[phone].startswith("None:") and "timed out" in failures[phone] for phone in slow)
    sent = {fields["sid"]: phone for phone, entries in by_phone.items() for fields in entries
            if fields["event"] == "sent"}
    assert sent == {m["sid"]: m["to"] for m in scripted.messages if m["to"] not in slow}
    funnel = accord.store.funnel(flow)
    assert (funnel["sent"], funnel["send_failed"], funnel["asked"]) == (200 - len(unknown) - 1, len(unknown) + 1, 199)
    funnel_matches(accord, flow, states_parse(redis_client, flow))
    assert accord.store.verify_ledger(flow.id) is None

    # The number given back goes again later in the round, once the provider lets it through.
    scripted.reset()
    registry = ScheduledJobRegistry(queue=queue_for(accord))
    (retry,) = Job.fetch_many(registry.get_job_ids(), connection=accord.store.redis)
    assert retry is not None and retry.kwargs == {"attempt": 1}
    clock.advance(seconds=LATER_FIRST)
    registry.requeue(retry)
    SimpleWorker([queue_for(accord)], connection=accord.store.redis).work(burst=True)
    assert [message["to"] for message in scripted.messages] == [throttled_out]
    assert accord.store.state(flow, throttled_out) == "asked"
    # The next round over the same file asks nobody again.
    start_round(accord, flow, path, ORIGIN, rate=1000)
    SimpleWorker([queue_for(accord)], connection=accord.store.redis).work(burst=True)
    assert [message["to"] for message in scripted.messages] == [throttled_out]
    assert accord.store.verify_ledger(flow.id) is None
    print(f"\n200 numbers through 429s, 5xx and timeouts in {seconds:.1f} s: {len(taken)} asked once, "
          f"{len(failed)} failed and {len(slow)} timed out (outcome unknown, never resent), "
          f"1 throttled out and asked again later in the round")
