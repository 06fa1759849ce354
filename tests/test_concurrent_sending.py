"""One worker keeps the round's rate while each answer takes a while: its sends wait on threads of their own.

The real Twilio client sends to the local server, which answers each request 0.2 s after it came
(requests on different connections wait together, as at a provider) and notes, as each arrives,
when it came and whether its number was already claimed.
"""

from __future__ import annotations

import threading
import time
from bisect import bisect_left
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import redis
from rq.registry import FailedJobRegistry

from bot import Accord, create_app, use
from bot.batches import Batches
from bot.config import SEND_CONCURRENCY, Config, ConfigError
from bot.flows import Flow
from bot.gateways.twilio import TwilioGateway
from bot.sending import RETRIES, enqueue, queue_for
from bot.workers import resume
from tests.conftest import Clock
from tests.test_faults import ScriptedTwilio, finished_results
from tests.test_recovery import held_back, run_held_back
from tests.test_rounds import work

pytestmark = pytest.mark.slow
LATENCY = 0.2  # seconds the provider takes to answer: one text at a time, 5 a second at most
RATE = 40  # texts a second: eight times what one text at a time reaches
BUDGET = 10.0  # seconds: past this, a batch the rate sends in ~5 s is paused (one at a time needs 40 s)
THROTTLED = [(429, 20429)] * (RETRIES + 1)  # refused in place, every time: the number must go again later


class NotingTwilio(ScriptedTwilio):
    """The scripted Twilio server, noting for each POST when it came and whether its number was claimed."""

    def __init__(self) -> None:
        super().__init__()
        self.arrivals: list[tuple[float, str, bool]] = []  # (monotonic time, To, claimed by then)
        self.claimed = lambda phone: True  # the test says how to read a claim

    def _create(self, form: dict[str, str]) -> tuple[int, dict[str, Any]]:
        arrived, to = time.monotonic(), form.get("To", "")
        claimed = self.claimed(to)
        with self._lock:
            self.arrivals.append((arrived, to, claimed))
        return super()._create(form)


@pytest.fixture
def provider() -> Iterator[NotingTwilio]:
    with NotingTwilio() as server:
        server.delay(LATENCY)
        yield server


@pytest.fixture
def accord(config: Config, clock: Clock, redis_client: redis.Redis, provider: NotingTwilio) -> Accord:
    """The services a worker runs with, sending through the real Twilio client to the slow server."""
    gateway = TwilioGateway(provider.account_sid, provider.auth_token, api_url=provider.base_url, timeout=2)
    accord: Accord = create_app(config, gateway=gateway, clock=clock).extensions["accord"]
    use(accord)  # what a worker process does once at start
    flow = accord.flows["demo"]
    accord.store.set_round(flow, rate=str(RATE))
    provider.claimed = lambda phone: accord.store.state(flow, phone) == "asked"
    return accord


def numbers(count: int, block: int) -> list[str]:
    return [f"+336{block:04d}{n:04d}" for n in range(count)]


def fullest_second(times: list[float]) -> int:
    """Return the most arrivals in any sliding second [t, t + 1) (sorted times)."""
    return max(bisect_left(times, t + 1) - i for i, t in enumerate(times))


def send_within_budget(accord: Accord, flow: Flow) -> float:
    """Work the queue in this process, as a worker does; pause the flow if it takes past BUDGET; return
    how long it took."""
    watchdog = threading.Timer(BUDGET, accord.store.pause, [flow])
    watchdog.start()
    began = time.monotonic()
    try:
        work(accord)
    finally:
        watchdog.cancel()
    return time.monotonic() - began


def test_one_worker_sends_at_the_rate_while_each_answer_takes_a_fifth_of_a_second(
        accord: Accord, provider: NotingTwilio):
    flow, phones = accord.flows["demo"], numbers(200, 1400)
    enqueue(accord, "requests", flow, phones)
    took = send_within_budget(accord, flow)
    times = sorted(t for t, _, _ in provider.arrivals)
    per_second = (len(times) - 1) / (times[-1] - times[0])
    print(f"\n{len(times)} texts in {took:.1f} s, {per_second:.1f}/s at a rate of {RATE}/s, each answered after "
          f"{LATENCY} s (one at a time: {1 / LATENCY:.0f}/s at most)")
    assert not accord.store.is_paused(flow), f"not done in {BUDGET:.0f} s: {len(times)} sent"
    assert Counter(message["to"] for message in provider.messages) == dict.fromkeys(phones, 1)
    assert per_second >= 0.9 * RATE


def test_each_send_follows_its_claim_nobody_gets_two_and_the_pace_holds(
        accord: Accord, provider: NotingTwilio):
    flow, phones = accord.flows["demo"], numbers(120, 1401)
    enqueue(accord, "requests", flow, phones)
    send_within_budget(accord, flow)
    assert [to for _, to, claimed in provider.arrivals if not claimed] == []  # claimed before its request left
    assert Counter(to for _, to, _ in provider.arrivals) == dict.fromkeys(phones, 1)
    assert fullest_second(sorted(t for t, _, _ in provider.arrivals)) <= RATE + 1
    story = Counter(tuple(fields["event"].partition(":")[0] for _, fields in accord.store.ledger(flow.id)
                          if fields.get("phone") == phone) for phone in phones)
    assert story == {("ask", "sent"): len(phones)}  # each recorded as sent, after its claim


def test_numbers_the_provider_throttles_while_others_are_in_flight_go_again_later_exactly_once(
        accord: Accord, provider: NotingTwilio, clock: Clock):
    flow, phones = accord.flows["demo"], numbers(60, 1402)
    throttled = [phone for index, phone in enumerate(phones) if index % 3 == 0]  # a third, spread out
    provider.errors = {phone: list(THROTTLED) for phone in throttled}
    enqueue(accord, "requests", flow, phones)
    work(accord)
    assert sorted(message["to"] for message in provider.messages) == sorted(set(phones) - set(throttled))
    assert {accord.store.state(flow, phone) for phone in throttled} == {"new"}  # claims given back
    ((retry, _),) = held_back(accord)  # all of them, as one batch, in batch order
    assert Batches(accord.store).read(*retry.args) == throttled and retry.kwargs == {"attempt": 1}
    while run_held_back(accord, clock):
        pass
    assert Counter(message["to"] for message in provider.messages) == dict.fromkeys(phones, 1)
    posts = Counter(to for _, to, _ in provider.arrivals)
    assert {posts[phone] for phone in throttled} == {RETRIES + 2}  # refused RETRIES + 1 times, then taken
    assert [to for _, to, claimed in provider.arrivals if not claimed] == []
    assert all(accord.store.state(flow, phone) == "asked" for phone in phones)
    assert accord.store.verify_ledger(flow.id) is None


def test_a_pause_mid_batch_parks_the_rest_and_nothing_is_sent_after_it(accord: Accord, provider: NotingTwilio):
    flow, phones = accord.flows["demo"], numbers(200, 1403)
    enqueue(accord, "requests", flow, phones)
    paused_at: list[float] = []

    def pause_once_some_went() -> None:
        while len(provider.messages) < 40:
            time.sleep(0.005)
        accord.store.pause(flow)
        paused_at.append(time.monotonic())

    pauser = threading.Thread(target=pause_once_some_went, daemon=True)
    pauser.start()
    work(accord)
    pauser.join(timeout=10)
    # The send whose slot came before the pause may still leave (a slot is 25 ms); nothing after it.
    late = [to for t, to, _ in provider.arrivals if t > paused_at[0] + 0.25]
    assert late == []
    sent = [message["to"] for message in provider.messages]
    assert len(set(sent)) == len(sent) < len(phones)
    # Those in flight ended, and were recorded and counted; the rest waits, unclaimed, for `round resume`.
    recorded = {fields["phone"] for _, fields in accord.store.ledger(flow.id) if fields["event"] == "sent"}
    assert recorded == set(sent)
    rest = [phone for phone in phones if phone not in set(sent)]
    assert finished_results(accord) == {"sent": len(sent), "parked": len(rest)}
    assert {accord.store.state(flow, phone) for phone in rest} == {"new"}
    assert resume(accord, flow) == (1, 0)
    work(accord)
    assert Counter(message["to"] for message in provider.messages) == dict.fromkeys(phones, 1)


def test_the_sending_threads_keep_their_connections_alive_in_one_pool(
        accord: Accord, provider: NotingTwilio, caplog: pytest.LogCaptureFixture):
    flow, phones = accord.flows["demo"], numbers(3 * accord.config.send_concurrency, 1405)
    accord.store.set_round(flow, rate="1000")  # as many in flight as a worker may have
    enqueue(accord, "requests", flow, phones)
    work(accord)
    assert Counter(message["to"] for message in provider.messages) == dict.fromkeys(phones, 1)
    # A pool smaller than the threads closes a connection after each answer past its size.
    assert "Connection pool is full" not in caplog.text


@pytest.mark.parametrize(("value", "expected"), [(None, SEND_CONCURRENCY), ("1", 1), ("64", 64), ("256", 256)])
def test_send_concurrency_is_a_setting(tmp_path: Path, value: str | None, expected: int):
    environ = {"INSTANCE_DIR": str(tmp_path)} | ({"SEND_CONCURRENCY": value} if value else {})
    assert Config.from_env(environ, dotenv=tmp_path / "absent.env").send_concurrency == expected


@pytest.mark.parametrize("value", ["0", "257", "many", "٣", "1e3", "9" * 5000])
def test_a_send_concurrency_out_of_range_is_refused_by_name(tmp_path: Path, value: str):
    with pytest.raises(ConfigError, match="SEND_CONCURRENCY: must be a number .* from 1 to 256"):
        Config.from_env({"INSTANCE_DIR": str(tmp_path), "SEND_CONCURRENCY": value}, dotenv=tmp_path / "absent.env")


class RaisingGateway:
    """The Twilio gateway, but a send to `victim` raises what no gateway should (a bug)."""

    def __init__(self, inner: TwilioGateway, victim: str) -> None:
        self.inner, self.victim = inner, victim

    def send(self, to: str, body: str, **options: Any) -> str:
        if to == self.victim:
            raise RuntimeError("a bug")
        return self.inner.send(to, body, **options)


def test_a_send_that_raises_is_logged_and_fails_its_job_its_number_claimed_never_resent(
        accord: Accord, provider: NotingTwilio, caplog: pytest.LogCaptureFixture):
    flow, phones = accord.flows["demo"], numbers(30, 1404)
    victim = phones[10]
    gateway, accord.gateway = accord.gateway, RaisingGateway(accord.gateway, victim)  # type: ignore[arg-type]
    enqueue(accord, "requests", flow, phones)
    work(accord)
    assert len(FailedJobRegistry(queue=queue_for(accord))) == 1  # as when one send at a time raised
    assert "raised RuntimeError; the batch stops" in caplog.text and victim not in caplog.text
    assert accord.store.state(flow, victim) == "asked"  # its claim stands: never sent twice
    accord.gateway = gateway
    assert resume(accord, flow) == (0, 1)
    work(accord)
    assert Counter(message["to"] for message in provider.messages) == dict.fromkeys(set(phones) - {victim}, 1)
