"""Texts the webhook missed come back from Twilio's API, are replayed once at the time they came, and answered once."""

from __future__ import annotations

import dataclasses
import datetime as dt

import pytest
from click.testing import CliRunner, Result
from rq import SimpleWorker

from bot import Accord, create_app
from bot.cli import Services, main
from bot.reconcile import ReconcileError, reconcile
from bot.sending import ask, queue_for
from tests.conftest import OVH_SECRET, PARIS, SMS, Clock, answers
from tests.twilio_server import TwilioServer

VOTER, OTHER = "+33612980001", "+33612980002"
SINCE = "2026-12-01T09:30"  # naive: Paris time, like the flow


@pytest.fixture
def accord(twilio_accord: Accord) -> Accord:
    return twilio_accord  # sending through the real Twilio client to the local server


@pytest.fixture
def flow(accord: Accord):
    return accord.flows["demo"]


def run(accord: Accord, *args: str) -> Result:
    return CliRunner().invoke(main, list(args), obj=Services(accord), catch_exceptions=False)


def reconcile_cli(accord: Accord, *extra: str) -> Result:
    result = run(accord, "reconcile", "demo", "--since", SINCE, *extra)
    assert result.exit_code == 0, result.output
    return result


def at(hour: int, minute: int) -> dt.datetime:
    return dt.datetime(2026, 12, 1, hour, minute, tzinfo=PARIS)


def inbound(twilio: TwilioServer, flow, phone: str, body: str, moment: dt.datetime) -> str:
    return twilio.add_inbound(phone, flow.sender, body, moment)["sid"]


@pytest.fixture
def missed(accord: Accord, flow, twilio: TwilioServer, clock: Clock) -> dict[str, str]:
    """Both numbers were asked at 09:00; their OUI and STOP came at 10:05 and 10:06 while the app was down."""
    clock.set(at(9, 0))
    assert ask(accord, flow, VOTER) == "sent" and ask(accord, flow, OTHER) == "sent"
    sids = {VOTER: inbound(twilio, flow, VOTER, "OUI", at(10, 5)),
            OTHER: inbound(twilio, flow, OTHER, "STOP", at(10, 6))}
    clock.set(at(14, 0))
    return sids


def answers_in_ledger(accord: Accord) -> list[tuple[str, str, str]]:
    return [(f["phone"], f["event"], f["sid"]) for _, f in accord.store.ledger("demo") if f["event"].startswith("in:")]


def test_missed_answers_are_replayed_once(accord, flow, missed, twilio):
    result = reconcile_cli(accord)
    for line in ("fetched: 2", "replayed: 2", "already processed: 0", "skipped (sender not E.164): 0"):
        assert line in result.output, line
    assert accord.store.state(flow, VOTER) == "consented"
    assert accord.store.state(flow, OTHER) == "opted_out" and accord.store.is_suppressed(flow, OTHER)
    assert answers_in_ledger(accord) == [(VOTER, "in:YES", missed[VOTER]), (OTHER, "in:STOP", missed[OTHER])]
    assert accord.store.verify_ledger("demo") is None


def test_replayed_answers_are_sent_once_as_their_twiml_would_have_been(accord, flow, missed, twilio):
    reconcile_cli(accord)
    assert [(m["to"], m["body"]) for m in twilio.messages[2:]] == [
        (VOTER, flow.texts.confirmation), (VOTER, flow.texts.content[0]), (OTHER, flow.texts.stopped)]
    reconcile_cli(accord)
    assert len(twilio.messages) == 5


@pytest.mark.parametrize("moment", [at(23, 30), at(22, 59) + dt.timedelta(seconds=30)],
                         ids=["after the window", "in its last minute"])
def test_out_of_hours_the_content_a_yes_is_owed_is_held_and_said_so(accord, flow, missed, twilio, clock, moment):
    clock.set(moment)  # the demo flow sends 07:00-23:00: the confirmations go, the content waits
    result = reconcile_cli(accord)
    assert [(m["to"], m["body"]) for m in twilio.messages[2:]] == [
        (VOTER, flow.texts.confirmation), (OTHER, flow.texts.stopped)]
    assert "1 campaign text(s) the bot would have sent at the time were held" in result.output
    assert "`content send demo`" in result.output


def test_a_yes_found_by_reconcile_out_of_hours_gets_content_with_the_next_content_send(accord, flow, missed,
                                                                                       twilio, clock):
    clock.set(at(23, 30))
    reconcile_cli(accord)
    clock.set(dt.datetime(2026, 12, 2, 9, 0, tzinfo=PARIS))
    twilio.reset()
    assert "queued for 1 consented" in run(accord, "content", "send", "demo").output
    SimpleWorker([queue_for(accord)], connection=accord.store.redis).work(burst=True)
    assert [(m["to"], m["body"]) for m in twilio.messages] == [(VOTER, flow.texts.content[0])]


def webhook(accord: Accord) -> SMS:
    return SMS(create_app(accord.config, gateway=accord.gateway, clock=accord.store.clock).test_client())


@pytest.mark.parametrize("moment", [at(23, 30), at(22, 59) + dt.timedelta(seconds=30)],
                         ids=["after the window", "in its last minute"])
def test_an_answer_throttled_at_noon_is_not_sent_at_night_by_a_later_reconcile(accord, flow, missed, twilio,
                                                                               clock, moment):
    """Guard: `fits(...)` in bot/reconcile.py _open, for content the step chose at noon."""
    twilio.fail_next(status=429, code=20429)  # the first answer, VOTER's, is refused unprocessed
    reconcile_cli(accord)
    assert [(m["to"], m["body"]) for m in twilio.messages[2:]] == [(OTHER, flow.texts.stopped)]
    clock.set(moment)  # the fault is gone, and so is the window (07:00-23:00), or all but its last minute
    result = reconcile_cli(accord)
    assert [(m["to"], m["body"]) for m in twilio.messages[3:]] == [(VOTER, flow.texts.confirmation)]
    assert "1 campaign text(s) the bot would have sent at the time were held" in result.output
    reconcile_cli(accord)  # nor later, by reconcile: the content is the next `content send`'s
    assert len(twilio.messages) == 4
    clock.set(dt.datetime(2026, 12, 2, 9, 0, tzinfo=PARIS))
    assert "queued for 1 consented" in run(accord, "content", "send", "demo").output
    SimpleWorker([queue_for(accord)], connection=accord.store.redis).work(burst=True)
    assert [(m["to"], m["body"]) for m in twilio.messages[4:]] == [(VOTER, flow.texts.content[0])]


def test_an_answer_throttled_before_a_stop_never_brings_content_to_the_voter(accord, flow, missed, twilio, clock):
    twilio.fail_next(status=429, code=20429)
    reconcile_cli(accord)
    assert answers(webhook(accord).send(VOTER, "STOP", to=flow.sender)) == [flow.texts.stopped]
    result = reconcile_cli(accord)
    # The confirmation is a service text the voter was owed; the content is campaign, and they objected.
    assert [(m["to"], m["body"]) for m in twilio.messages[3:]] == [(VOTER, flow.texts.confirmation)]
    assert "1 campaign text(s) the bot would have sent at the time were held" in result.output
    assert accord.store.state(flow, VOTER) == "opted_out" and accord.store.is_suppressed(flow, VOTER)
    run(accord, "content", "send", "demo")
    SimpleWorker([queue_for(accord)], connection=accord.store.redis).work(burst=True)
    assert [m for m in twilio.messages[4:] if m["to"] == VOTER] == []


def test_a_start_throttled_at_noon_is_not_asked_at_night_and_waits_for_the_next_round(accord, flow, twilio,
                                                                                      clock):
    clock.set(at(9, 0))
    assert ask(accord, flow, VOTER) == "sent"
    assert answers(webhook(accord).send(VOTER, "STOP", to=flow.sender)) == [flow.texts.stopped]
    inbound(twilio, flow, VOTER, "START", at(10, 5))  # missed: the app was down
    clock.set(at(14, 0))
    twilio.fail_next(status=429, code=20429)
    reconcile_cli(accord)
    assert accord.store.state(flow, VOTER) == "asked" and len(twilio.messages) == 1
    clock.set(at(23, 30))
    result = reconcile_cli(accord)
    assert len(twilio.messages) == 1, "a consent request went out at night"
    assert "1 campaign text(s) the bot would have sent at the time were held" in result.output
    assert accord.store.state(flow, VOTER) == "new"  # askable by the next round, as a START at night leaves it
    clock.set(dt.datetime(2026, 12, 2, 9, 0, tzinfo=PARIS))
    reconcile_cli(accord)
    assert len(twilio.messages) == 1


def test_a_second_reconcile_changes_nothing(accord, flow, missed, redis_client):
    reconcile_cli(accord)
    ledger, funnel = accord.store.ledger("demo"), accord.store.funnel(flow)
    states = {phone: accord.store.state(flow, phone) for phone in (VOTER, OTHER)}
    again = reconcile_cli(accord)
    assert "replayed: 0" in again.output and "already processed: 2" in again.output
    assert "would have sent" not in again.output
    assert accord.store.ledger("demo") == ledger and accord.store.funnel(flow) == funnel
    assert {phone: accord.store.state(flow, phone) for phone in (VOTER, OTHER)} == states


def test_a_text_the_webhook_answered_is_not_replayed(accord, flow, missed):
    sms = SMS(create_app(accord.config, gateway=accord.gateway, clock=accord.store.clock).test_client())
    sms.send(VOTER, "OUI", to=flow.sender, sid=missed[VOTER])  # the webhook got this one after all
    result = reconcile_cli(accord)
    assert "replayed: 1" in result.output and "already processed: 1" in result.output
    assert [event for _, event, _ in answers_in_ledger(accord)] == ["in:YES", "in:STOP"]


def test_texts_before_since_are_ignored(accord, flow, missed, twilio):
    inbound(twilio, flow, VOTER, "NON", at(9, 29))
    result = reconcile_cli(accord)
    assert "fetched: 2" in result.output
    assert accord.store.state(flow, VOTER) == "consented"


def test_a_sender_that_is_not_e164_is_skipped(accord, flow, missed, twilio):
    inbound(twilio, flow, "VODAFONE", "Votre forfait", at(11, 0))
    result = reconcile_cli(accord)
    assert "fetched: 3" in result.output and "skipped (sender not E.164): 1" in result.output
    assert "replayed: 2" in result.output


def test_reading_pages_stops_at_the_limit_keeping_the_newest(accord, flow, twilio, clock):
    phones = [f"+3361298001{n}" for n in range(7)]
    for n, phone in enumerate(phones):
        ask(accord, flow, phone)
        inbound(twilio, flow, phone, "oui", at(10, n))
    twilio.requests.clear()
    done = reconcile(accord, flow, at(9, 30), limit=5, page_size=2)
    assert (done.fetched, done.replayed, done.limited) == (5, 5, True)
    assert len([r for r in twilio.requests if r["method"] == "GET"]) == 3  # pages of 2, 2 and 1
    assert [accord.store.state(flow, phone) for phone in phones] == ["asked"] * 2 + ["consented"] * 5


def test_the_limit_is_said_when_reached(accord, missed):
    result = reconcile_cli(accord, "--limit", "1")
    assert "fetched: 1" in result.output and "The limit of 1 was reached" in result.stderr


def test_the_outbox_gateway_cannot_reconcile(config, clock, redis_client):
    local = create_app(config, clock=clock).extensions["accord"]  # no Twilio settings: the outbox gateway
    result = run(local, "reconcile", "demo", "--since", SINCE)
    assert result.exit_code == 1
    assert "reconcile needs a provider's settings: TWILIO_ACCOUNT_SID" in result.output


def test_a_since_that_is_not_a_date_is_refused(accord):
    result = run(accord, "reconcile", "demo", "--since", "yesterday")
    assert result.exit_code == 2 and "--since" in result.output


def test_a_since_older_than_the_remembered_message_sids_is_refused(accord, missed, twilio):
    result = run(accord, "reconcile", "demo", "--since", "2026-10-01T00:00")
    assert result.exit_code == 1 and "more than 35 days" in result.output
    assert not [r for r in twilio.requests if r["method"] == "GET"]


def test_a_messaging_service_sender_is_refused_rather_than_silently_finding_nothing(accord, flow):
    service = dataclasses.replace(flow, sender="MG" + "0" * 32)
    with pytest.raises(ReconcileError, match="Messaging Service"):
        reconcile(accord, service, at(9, 30))


# On OVHcloud: its incoming texts are replayed the same way, and its STOP list becomes objections.

THIRD = "+33612980003"


def test_on_ovh_missed_texts_and_the_stop_list_are_reconciled_once(ovh_accord: Accord, ovh_server, clock: Clock):
    accord, flow = ovh_accord, ovh_accord.flows["demo"]
    clock.set(at(9, 0))
    assert ask(accord, flow, VOTER) == "sent" and ask(accord, flow, OTHER) == "sent"
    sid = "OVH" + ovh_server.add_inbound(VOTER, "OUI", at=at(10, 5).timestamp())
    ovh_server.blacklist(OTHER)  # texted STOP to OVHcloud's own number
    ovh_server.blacklist(THIRD)  # never asked here, objected all the same
    clock.set(at(14, 0))

    output = reconcile_cli(accord).output
    for line in ("fetched: 1", "replayed: 1", "answers sent: 2", "objections from its STOP list: 2"):
        assert line in output, line
    assert accord.store.state(flow, VOTER) == "consented"
    assert [(job["receiver"], job["body"]["message"]) for job in ovh_server.jobs[2:]] == [
        (VOTER, flow.texts.confirmation), (VOTER, flow.texts.content[0])]
    assert accord.store.state(flow, OTHER) == "opted_out"
    assert accord.store.is_suppressed(flow, OTHER) and accord.store.is_suppressed(flow, THIRD)
    assert answers_in_ledger(accord) == [(VOTER, "in:YES", sid)]
    assert [entry["phone"] for _, entry in accord.store.ledger("demo") if entry.get("event") == "carrier_stop"] == [
        OTHER, THIRD]

    output = reconcile_cli(accord).output
    for line in ("replayed: 0", "already processed: 1", "answers sent: 0", "objections from its STOP list: 0"):
        assert line in output, line
    assert len(ovh_server.jobs) == 4
    assert accord.store.verify_ledger("demo") is None


def test_on_ovh_a_text_its_callback_brought_is_not_answered_again(ovh_accord: Accord, ovh_server, clock: Clock):
    accord, flow = ovh_accord, ovh_accord.flows["demo"]
    clock.set(at(9, 0))
    assert ask(accord, flow, VOTER) == "sent"
    ovh_id = ovh_server.add_inbound(VOTER, "OUI", at=at(10, 5).timestamp())
    client = create_app(accord.config, gateway=accord.gateway, clock=clock).test_client()
    assert client.get(f"/sms/ovh/{OVH_SECRET}/inbound/{flow.sender}",
                      query_string={"id": ovh_id, "sender": VOTER, "message": "OUI"}).status_code == 204
    assert len(ovh_server.jobs) == 3
    clock.set(at(14, 0))
    assert "already processed: 1" in reconcile_cli(accord).output
    assert len(ovh_server.jobs) == 3
