"""An answer's campaign texts go inside the voter's window, with a minute of it left, whenever the answer goes.

The step chooses them with a minute of the window left; an answer that goes later (Twilio asking
again for a TwiML answer it never got, an OVHcloud callback called again hours on, a slow send
before it) is checked again when it goes (bot/answering.py). Through each provider's real client
and callbacks, against their local servers.
"""

from __future__ import annotations

import datetime as dt

import pytest
import redis
from click.testing import CliRunner
from rq import SimpleWorker

from bot import Accord, states
from bot.cli import Services, main
from bot.keys import content_key
from bot.sending import ask, queue_for
from bot.store import _bit_of
from tests import test_guards
from tests.conftest import PARIS, Clock, OvhProvider, TwilioProvider, Voter
from tests.test_recovery import held_back, run_held_back
from tests.test_rounds import work

VOTER, OTHER = "+33612970001", "+33612970002"
app, sms = test_guards.app, test_guards.sms  # fixtures: the app on each provider's real client, its voters
SID = "SM" + "b" * 32  # a text of the voter's, the same each time its provider calls again
CLOSE = dt.datetime(2026, 12, 1, 23, 0, tzinfo=PARIS)  # the demo flow sends 07:00-23:00, every day
NEXT_MORNING = dt.datetime(2026, 12, 2, 9, 0, tzinfo=PARIS)


def busy(provider: TwilioProvider | OvhProvider) -> None:
    """Have the provider refuse the next send, too busy: the answer waits for the callback's next call."""
    if provider.name == "ovh":
        provider.server.fail_next(1, 429)
    else:
        provider.server.fail_next(1, 429, 20429)


def redis_gone(*args: object) -> None:
    raise redis.ConnectionError("Connection closed by server")


def start_as_redis_fails(accord: Accord, sms: Voter, monkeypatch: pytest.MonkeyPatch) -> None:
    """Text START while Redis fails just after its step: OVHcloud is answered 503, to call again."""
    with monkeypatch.context() as failing:
        failing.setattr(accord.store, "claim_answer", redis_gone)
        assert sms.send(VOTER, "START", sid=SID).status_code == 503


def content_bit(accord: Accord, phone: str) -> int:
    return accord.store.redis.getbit(content_key("demo", 1), _bit_of(phone))


def content_send(accord: Accord) -> None:
    """Run `content send demo` in the next morning's window, and the worker that sends it."""
    result = CliRunner().invoke(main, ["content", "send", "demo"], obj=Services(accord), catch_exceptions=False)
    assert result.exit_code == 0, result.output
    SimpleWorker([queue_for(accord)], connection=accord.store.redis).work(burst=True)


def test_a_yes_in_the_window_s_last_minute_is_thanked_and_its_content_waits_for_the_next_content_send(
        accord: Accord, sms: Voter, provider, clock: Clock):
    """Guard: the minute on in bot/conversation.py _shut_in_minute."""
    flow = accord.flows["demo"]
    clock.set(CLOSE - dt.timedelta(minutes=10))
    assert ask(accord, flow, VOTER) == "sent" and ask(accord, flow, OTHER) == "sent"
    clock.set(CLOSE - dt.timedelta(seconds=90))  # a minute and a half left: content goes with the thanks
    assert sms.send(OTHER, "OUI").texts == [flow.texts.confirmation, flow.texts.content[0]]
    clock.set(CLOSE - dt.timedelta(seconds=50))  # less than a minute left: the thanks alone
    assert sms.send(VOTER, "OUI").texts == [flow.texts.confirmation]
    assert accord.store.state(flow, VOTER) == "consented" and content_bit(accord, VOTER) == 0
    clock.set(NEXT_MORNING)
    provider.forget()
    content_send(accord)
    assert [(m["to"], m["body"]) for m in provider.taken()] == [(VOTER, flow.texts.content[0])]


def test_an_answer_the_provider_was_too_busy_for_goes_again_after_the_window_shut_without_its_content(
        accord: Accord, sms: Voter, provider, clock: Clock):
    """Guard: `fits(...)` in bot/gateways/ovh_webhook.py answer (OVHcloud) and `still_fitting` in
    bot/webhook.py inbound (Twilio's TwiML given again)."""
    flow = accord.flows["demo"]
    clock.set(CLOSE - dt.timedelta(minutes=10))
    assert ask(accord, flow, VOTER) == "sent"
    if provider.name == "ovh":
        busy(provider)  # the thanks refused, and content waits behind them for the callback's next call
        assert sms.send(VOTER, "OUI", sid=SID).texts == []
    else:  # answered in TwiML, which Twilio never got: it asks again with the same text
        assert sms.send(VOTER, "OUI", sid=SID).texts == [flow.texts.confirmation, flow.texts.content[0]]
    clock.set(CLOSE + dt.timedelta(hours=4))  # 03:00, the window shut
    assert sms.send(VOTER, "OUI", sid=SID).texts == [flow.texts.confirmation]
    assert flow.texts.content[0] not in provider.tried(VOTER)
    if provider.name == "ovh":  # it certainly never went: the next `content send` has it
        assert content_bit(accord, VOTER) == 0
        clock.set(NEXT_MORNING)
        provider.forget()
        content_send(accord)
        assert [(m["to"], m["body"]) for m in provider.taken()] == [(VOTER, flow.texts.content[0])]


@pytest.mark.parametrize("then", ["asked by day", "STOP first"])
def test_a_start_s_consent_request_the_provider_was_too_busy_for_goes_to_the_workers_and_never_at_night(
        accord: Accord, sms: Voter, provider: OvhProvider, clock: Clock, then: str):
    """Guard: `_ask_later` in bot/gateways/ovh_webhook.py answer, and `still_ours` before a request goes."""
    if provider.name != "ovh":
        pytest.skip("Twilio sends TwiML's texts itself")
    flow = accord.flows["demo"]
    clock.set(CLOSE - dt.timedelta(minutes=10))
    assert sms.send(VOTER, "STOP").texts == [flow.texts.stopped]
    busy(provider)  # OVHcloud too busy for the START's request, which the workers then send
    assert sms.send(VOTER, "START", sid=SID).texts == []
    assert accord.store.state(flow, VOTER) == "new"  # its question back, the number on a batch for the workers
    clock.set(CLOSE + dt.timedelta(hours=4))
    assert sms.send(VOTER, "START", sid=SID).texts == []  # called again at 03:00: nothing
    work(accord)  # the workers at 03:00: the request waits for the morning
    assert provider.tried(VOTER).count(flow.texts.consent_request) == 1  # the one refused
    if then == "STOP first":
        clock.set(NEXT_MORNING - dt.timedelta(hours=1))
        assert sms.send(VOTER, "STOP").texts == [flow.texts.stopped]
    ((job, wait),) = held_back(accord)
    run_held_back(accord, clock)
    asked = provider.tried(VOTER).count(flow.texts.consent_request) - 1
    assert asked == (1 if then == "asked by day" else 0)
    assert sms.send(VOTER, "START", sid=SID).texts == []  # and the old callback, called again, asks nothing


@pytest.mark.parametrize("meanwhile", ["a STOP", "the night"])
def test_a_start_s_callback_called_again_asks_nothing_after_a_stop_and_leaves_the_night_s_to_the_workers(
        accord: Accord, sms: Voter, provider: OvhProvider, clock: Clock, monkeypatch: pytest.MonkeyPatch,
        meanwhile: str):
    """Guard: `still_ours` before a consent request goes, and `_ask_later` for one the window no longer
    fits, in bot/gateways/ovh_webhook.py answer."""
    if provider.name != "ovh":
        pytest.skip("Twilio sends TwiML's texts itself")
    flow = accord.flows["demo"]
    clock.set(CLOSE - dt.timedelta(minutes=10))
    assert sms.send(VOTER, "STOP").texts == [flow.texts.stopped]
    start_as_redis_fails(accord, sms, monkeypatch)
    if meanwhile == "a STOP":
        assert sms.send(VOTER, "STOP").texts == [flow.texts.stopped]  # the voter changed their mind meanwhile
        assert sms.send(VOTER, "START", sid=SID).texts == []  # OVHcloud calls again: no request to an objection
        assert flow.texts.consent_request not in provider.tried(VOTER)
        return
    clock.set(CLOSE + dt.timedelta(hours=4))
    assert sms.send(VOTER, "START", sid=SID).texts == []  # OVHcloud calls again at 03:00: not then
    assert accord.store.state(flow, VOTER) == "new"
    work(accord)  # the workers, at 03:00: they hold it for the morning
    assert provider.tried(VOTER).count(flow.texts.consent_request) == 0
    run_held_back(accord, clock)
    assert provider.tried(VOTER).count(flow.texts.consent_request) == 1  # asked once, in the morning


@pytest.mark.parametrize("called_again", ["at night", "by day"])
def test_a_start_s_callback_called_again_after_a_later_start_leaves_that_one_s_question_alone(
        accord: Accord, sms: Voter, provider: OvhProvider, clock: Clock, monkeypatch: pytest.MonkeyPatch,
        called_again: str):
    """Guard: `opened_by` before a consent request goes or goes back, in bot/gateways/ovh_webhook.py answer."""
    if provider.name != "ovh":
        pytest.skip("Twilio sends TwiML's texts itself")
    flow = accord.flows["demo"]
    clock.set(CLOSE - dt.timedelta(hours=2))
    assert sms.send(VOTER, "STOP").texts == [flow.texts.stopped]
    start_as_redis_fails(accord, sms, monkeypatch)
    clock.advance(seconds=60)
    assert sms.send(VOTER, "STOP").texts == [flow.texts.stopped]
    assert sms.send(VOTER, "START").texts == [flow.texts.consent_request]  # a later START, asked at once
    clock.set(CLOSE + dt.timedelta(hours=4) if called_again == "at night" else CLOSE - dt.timedelta(hours=1))
    assert sms.send(VOTER, "START", sid=SID).texts == []  # the first START, called again: not its question now
    assert accord.store.state(flow, VOTER) == "asked"
    assert sms.send(VOTER, "OUI").texts[0] == flow.texts.confirmation  # the voter answers the request they got
    work(accord)
    assert provider.tried(VOTER).count(flow.texts.consent_request) == 1 and held_back(accord) == []


def test_content_a_callback_called_again_carries_never_reaches_a_voter_who_objected_since(
        accord: Accord, sms: Voter, provider: OvhProvider, clock: Clock):
    """Guard: `still_ours` before content goes, and the objection before any text of a callback called
    again, in bot/gateways/ovh_webhook.py answer."""
    if provider.name != "ovh":
        pytest.skip("Twilio sends TwiML's texts itself")
    flow = accord.flows["demo"]
    clock.set(CLOSE - dt.timedelta(hours=2))
    assert ask(accord, flow, VOTER) == "sent"
    busy(provider)  # the thanks refused, and content waits behind them for the callback's next call
    assert sms.send(VOTER, "OUI", sid=SID).texts == []
    assert sms.send(VOTER, "STOP").texts == [flow.texts.stopped]
    sms.send(VOTER, "OUI", sid=SID)  # OVHcloud calls again, in the window
    assert flow.texts.content[0] not in provider.tried(VOTER)
    assert provider.tried(VOTER).count(flow.texts.confirmation) == 1  # the one refused: no thanks after a STOP


def test_a_stop_s_confirmation_the_provider_was_too_busy_for_goes_when_the_callback_is_called_again(
        accord: Accord, sms: Voter, provider: OvhProvider, clock: Clock):
    """Guard: the objection's own confirmation let through in bot/gateways/ovh_webhook.py answer."""
    if provider.name != "ovh":
        pytest.skip("Twilio sends TwiML's texts itself")
    flow = accord.flows["demo"]
    clock.set(CLOSE + dt.timedelta(hours=4))  # whatever the hour
    busy(provider)
    assert sms.send(VOTER, "STOP", sid=SID).texts == []
    assert sms.send(VOTER, "STOP", sid=SID).texts == [flow.texts.stopped]


def test_content_a_slow_thanks_kept_past_the_window_s_last_minute_is_held(
        accord: Accord, sms: Voter, provider, clock: Clock, monkeypatch: pytest.MonkeyPatch):
    """Guard: `fits(...)` in bot/gateways/ovh_webhook.py answer, for an answer's second text."""
    if provider.name != "ovh":
        pytest.skip("Twilio sends TwiML's texts itself, all at once")
    flow = accord.flows["demo"]
    clock.set(CLOSE - dt.timedelta(minutes=10))
    assert ask(accord, flow, VOTER) == "sent"
    gateway = accord.gateway_for(flow)
    send = gateway.send

    def slow(*args, **kwargs):  # each answer comes 45 s after its request, by the app's clock
        try:
            return send(*args, **kwargs)
        finally:
            clock.advance(seconds=45)

    monkeypatch.setattr(gateway, "send", slow)
    clock.set(CLOSE - dt.timedelta(seconds=90))
    assert sms.send(VOTER, "OUI").texts == [flow.texts.confirmation]  # content had 45 s left: held
    assert content_bit(accord, VOTER) == 0


def test_no_provider_holds_a_campaign_text_past_the_voter_s_window(accord: Accord, provider, clock: Clock):
    """OVHcloud counts validity in minutes: rounded down, never past the window; Twilio in seconds."""
    flow = accord.flows["demo"]
    clock.set(CLOSE - dt.timedelta(seconds=61.5))  # 61 s left, above the minute a text needs
    assert ask(accord, flow, VOTER) == "sent"
    if provider.name == "ovh":
        held = provider.server.jobs[-1]["body"]["validityPeriod"] * 60
    else:
        held = int(provider.server.requests[-1]["form"]["ValidityPeriod"])
    assert clock() + held <= CLOSE.timestamp()


def test_a_region_this_version_does_not_know_gets_no_late_campaign_text(accord: Accord, sms: Voter, provider,
                                                                       clock: Clock):
    """Guard: `region in REGIONS` in bot/answering.py time_left (a damaged record must not be a 500)."""
    if provider.name != "ovh":
        pytest.skip("the same check as OVHcloud's, for a TwiML answer given again")
    flow = accord.flows["demo"]
    clock.set(CLOSE - dt.timedelta(minutes=10))
    assert ask(accord, flow, VOTER) == "sent"
    busy(provider)
    assert sms.send(VOTER, "OUI", sid=SID).texts == []
    key, field = states.slot(flow.id, VOTER)
    record = accord.store.redis.hget(key, field).decode()
    accord.store.redis.hset(key, field, record.rstrip("ABCDEFGHIJKLMNOPQRSTUVWXYZ") + "Z")  # no such region
    assert sms.send(VOTER, "OUI", sid=SID).texts == [flow.texts.confirmation]
    assert content_bit(accord, VOTER) == 0


def test_a_start_whose_text_s_time_cannot_be_read_is_not_taken_for_the_open_question(
        accord: Accord, clock: Clock, monkeypatch: pytest.MonkeyPatch):
    """Guard: the ValueError in bot/store.py opened_by (an archived entry's time this version did not write)."""
    flow = accord.flows["demo"]
    clock.set(CLOSE - dt.timedelta(hours=2))
    accord.store.claim(flow, VOTER, window_open=True)
    monkeypatch.setattr(accord.store, "personal", lambda phone, retired=(): {
        "demo|1-0": ({"phone": VOTER, "event": "in:START", "sid": SID}, "not a time")})
    assert accord.store.opened_by(flow, VOTER, SID) is False
