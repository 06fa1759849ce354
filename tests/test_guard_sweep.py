"""Guards no other test noticed the removal of (the guard sweep of docs/COMPLIANCE.md).

Each test walks a real path, as a voter and an operator meet it: texts through the signed
webhook, rounds and content through the command line, an in-process RQ worker sending through
the real Twilio client to the local Twilio-shaped server, a real Redis and the injected clock.
Each names, in its docstring, the rule and the guard whose removal it notices.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
from pathlib import Path

import pytest
import redis
from click.testing import CliRunner, Result
from flask import Flask
from rq import SimpleWorker
from rq.registry import ScheduledJobRegistry

from bot import Accord, create_app, rounds, use
from bot.cli import Services, main
from bot.gateways.twilio import TwilioGateway
from bot.keys import content_key, queued_key
from bot.sending import queue_for
from tests.conftest import PARIS, ROOT, SMS, answers
from tests.twilio_server import TwilioServer

VOTER = "+33612980001"
OTHER = "+33739980002"
ORIGIN = ["--contract", "DV-2027-001", "--operator", "camille", "--rate", "1000"]


@pytest.fixture
def app(config, clock, redis_client, twilio: TwilioServer) -> Flask:
    """The app with the shipped flows, sending through the real Twilio client to the local server."""
    twilio.reset()
    gateway = TwilioGateway(twilio.account_sid, twilio.auth_token, api_url=twilio.base_url, timeout=2)
    app = create_app(config, gateway=gateway, clock=clock)
    use(app.extensions["accord"])  # what a worker process does once at start
    return app


@pytest.fixture
def flow(accord: Accord):
    return accord.flows["demo"]  # its window: every day, 07:00-23:00


def run(accord: Accord, *args: str) -> Result:
    result = CliRunner().invoke(main, list(args), obj=Services(accord), catch_exceptions=False)
    assert result.exit_code == 0, result.output
    return result


def start_round(accord: Accord, tmp_path: Path, *phones: str) -> Result:
    path = tmp_path / "contacts.csv"
    path.write_text("telephone\n" + "".join(f"{phone}\n" for phone in phones), encoding="utf-8")
    return run(accord, "round", "start", "demo", str(path), *ORIGIN)


def work(accord: Accord) -> None:
    """Run a worker in this process until the queue is empty."""
    SimpleWorker([queue_for(accord)], connection=accord.store.redis).work(burst=True)


def sent_to(twilio: TwilioServer, phone: str) -> list[str]:
    return [m["body"] for m in twilio.messages if m["to"] == phone]


def bit(phone: str) -> int:
    """Where a French mobile sits in a flow's bitmaps (queued, content sent), as MobileBits lays them out."""
    return int(phone[3:12]) - 600_000_000


# A.1: a YES from a number nobody asked is not consent (machine.SPEC: yes moves only an asked number).

def test_a_yes_from_a_number_never_asked_is_not_consent(accord: Accord, sms: SMS, flow, twilio):
    """Guard: `("yes", ["new"], "contacted", ("help",))` in bot/machine.py's SPEC.

    Until now only the randomised invariants test could happen on it.
    """
    assert answers(sms.send(VOTER, "OUI")) == [flow.texts.help], "an unasked number's OUI was taken for consent"
    assert accord.store.state(flow, VOTER) == "contacted"
    assert "content 1 queued for 0 consented number(s)" in run(accord, "content", "send", "demo").output
    work(accord)
    assert sent_to(twilio, VOTER) == []


# A.2: asked once, even when the same batch runs again (the claim from `new` only, machine.SPEC).

def test_a_batch_run_again_after_the_question_expired_asks_nobody_twice(accord: Accord, flow, twilio, clock,
                                                                         tmp_path, monkeypatch):
    """Guard: `("ask", ["new", "contacted"], ...)` in bot/machine.py, applied by the claim (Store.claim).

    An import whose batch was queued, but which Redis dropped before it could say so (settle), leaves
    the batch on file; `round resume` queues it again days later, after the question expired.
    """
    settle = accord.store.settle

    def redis_gone(*args, **kwargs):
        raise redis.ConnectionError("Redis went away")

    monkeypatch.setattr(accord.store, "settle", redis_gone)
    path = tmp_path / "contacts.csv"
    path.write_text(f"telephone\n{VOTER}\n{OTHER}\n", encoding="utf-8")
    origin = rounds.Origin("supporters", "", "", "camille", path.name, "")
    with pytest.raises(redis.ConnectionError):
        rounds.start_round(accord, flow, path, origin, rate=1000)
    monkeypatch.setattr(accord.store, "settle", settle)
    work(accord)
    assert sent_to(twilio, VOTER) == sent_to(twilio, OTHER) == [flow.texts.consent_request]

    clock.advance(days=flow.expiry_days + 1)
    assert accord.store.state(flow, VOTER) == "expired"
    assert "1 interrupted batch(es) queued again" in run(accord, "round", "resume", "demo").output
    work(accord)
    for phone in (VOTER, OTHER):
        assert sent_to(twilio, phone) == [flow.texts.consent_request], f"{phone} was asked again after no answer"
    assert accord.store.state(flow, VOTER) == "expired"


# D.15: erasure leaves only the HMAC, and no bit that stands for the number either.

def test_an_erased_number_leaves_no_bit_in_the_flow_s_bitmaps(accord: Accord, sms: SMS, flow, twilio, tmp_path):
    """Guard: `whole=True` in bot/rights.py's erase (erase.lua clears the queued and content bits)."""
    start_round(accord, tmp_path, VOTER)
    work(accord)
    assert answers(sms.send(VOTER, "OUI")) == [flow.texts.confirmation, flow.texts.content[0]]
    store = accord.store
    assert store.redis.getbit(queued_key("demo"), bit(VOTER)) == 1
    assert store.redis.getbit(content_key("demo", 1), bit(VOTER)) == 1

    assert "demo: " in run(accord, "person", "erase", VOTER, "--yes").output
    assert store.redis.getbit(queued_key("demo"), bit(VOTER)) == 0, "the queued bitmap still holds the number"
    assert store.redis.getbit(content_key("demo", 1), bit(VOTER)) == 0, "the content bitmap still holds the number"
    assert store.is_suppressed(flow, VOTER)  # the HMAC stays, and the objection with it


# E.17: a text that could only live a few seconds before the window shuts waits for the next one.

def test_a_request_due_less_than_a_minute_before_the_window_shuts_waits_for_the_next_window(
        accord: Accord, flow, twilio, clock, tmp_path):
    """Guard: `validity(...) < MIN_VALIDITY` in bot/sending.py's _work (defer rather than send)."""
    clock.set(dt.datetime(2026, 12, 1, 22, 59, 30, tzinfo=PARIS))  # the demo window shuts at 23:00
    start_round(accord, tmp_path, VOTER)
    before = dt.datetime.now(dt.UTC)
    work(accord)
    assert twilio.messages == [], "a request went out with less than a minute left to deliver it"
    assert accord.store.state(flow, VOTER) == "new"
    registry = ScheduledJobRegistry(queue=queue_for(accord))
    (job_id,) = registry.get_job_ids()
    when = registry.get_scheduled_time(job_id).replace(tzinfo=dt.UTC)
    opens = dt.datetime(2026, 12, 2, 7, 0, tzinfo=PARIS)  # the next morning
    wait = (opens - dt.datetime(2026, 12, 1, 22, 59, 30, tzinfo=PARIS)).total_seconds()
    assert abs((when - before).total_seconds() - wait) < 5


# D.14: a purged opted-out number is reduced to its HMAC on its flow's controller's list.

def test_a_purged_opted_out_number_stays_objected_to_by_the_controller_the_flow_now_names(
        config, clock, redis_client, twilio, tmp_path):
    """Guard: `objection=state == "opted_out"` in bot/rights.py's purge (erase.lua writes the HMAC).

    Everywhere else the STOP itself already wrote the HMAC; the purge is what keeps the objection
    when the flow's controller_id was corrected after the STOP, and the state is all that held it.
    """
    flows = tmp_path / "flows"
    flows.mkdir()
    demo = (ROOT / "flows" / "demo.toml").read_text(encoding="utf-8")
    (flows / "demo.toml").write_text(demo, encoding="utf-8")
    settings = dataclasses.replace(config, flows_dir=flows)
    gateway = TwilioGateway(twilio.account_sid, twilio.auth_token, api_url=twilio.base_url, timeout=2)
    twilio.reset()
    before = create_app(settings, gateway=gateway, clock=clock)
    flow = before.extensions["accord"].flows["demo"]
    assert answers(SMS(before.test_client()).send(VOTER, "STOP")) == [flow.texts.stopped]

    renamed = demo.replace('controller_id = "liste-demo"', 'controller_id = "liste-demo-2030"')
    assert renamed != demo
    (flows / "demo.toml").write_text(renamed, encoding="utf-8")
    accord = create_app(settings, gateway=gateway, clock=clock).extensions["accord"]  # the bot restarted
    use(accord)
    assert "removed 1: demo: opted out: reduced to the suppression HMAC" in run(accord, "purge").output
    assert accord.store.is_suppressed(accord.flows["demo"], VOTER), "the purge forgot the objection"
    output = start_round(accord, tmp_path, VOTER, OTHER).output
    assert "suppressed: 1" in output and "queued: 1" in output
    work(accord)
    assert sent_to(twilio, VOTER) == [], "a number that texted STOP was asked after the purge"
    assert len(sent_to(twilio, OTHER)) == 1
