"""Exactly once, with the provider as witness: what a dead worker left in flight is found sent, or asked again.

A worker dies (here: `Killed`, raised where the process would stop) between its claim and its send,
or after the provider took the text but before it was recorded. The claim stays in flight; once
older than witness.GRACE, a sweep asks the local Twilio-shaped server, through the real client,
what it took: found, recorded with its sid; not found, given back and queued again, once.
"""

from __future__ import annotations

import datetime as dt
from collections import Counter
from pathlib import Path

import pytest
from click.testing import CliRunner, Result

from bot import Accord, create_app, witness
from bot.cli import Services, main
from bot.gateways import SendError
from bot.gateways.twilio import TwilioGateway
from bot.keys import in_flight_key
from bot.sending import ask, deliver
from bot.workers import SendingWorker
from tests.conftest import SMS, TUESDAY_MORNING, Clock, answers
from tests.test_erasure import mentions, redis_files  # noqa: F401  (a shared fixture)
from tests.test_rounds import work
from tests.twilio_server import TwilioServer

VOTER, OTHER = "+33612980001", "+33612980002"  # VOTER: the number tests/test_erasure.py looks for
ORIGIN = "imp0rt"


class Killed(BaseException):
    """The worker process dying just here: nothing after it runs, no `except Exception` sees it."""


class DyingGateway:
    """The real gateway, its worker killed just before a send reaches the provider, or just after."""

    def __init__(self, gateway, *, after: bool) -> None:
        self.gateway, self.after = gateway, after

    def send(self, to: str, body: str, **options) -> str:
        if self.after:
            self.gateway.send(to, body, **options)
        raise Killed

    def sent_to(self, *args, **kwargs):
        return self.gateway.sent_to(*args, **kwargs)


class SilentProvider:
    """The real gateway, whose provider cannot say what it took (its API down)."""

    def __init__(self, gateway) -> None:
        self.gateway = gateway

    def send(self, *args, **kwargs) -> str:
        return self.gateway.send(*args, **kwargs)

    def sent_to(self, *args, **kwargs):
        raise SendError(None, None, "Read timed out")


@pytest.fixture
def accord(twilio_accord: Accord, twilio: TwilioServer, clock: Clock) -> Accord:
    twilio.clock = clock  # the provider dates what it takes by the test's clock, as ours
    return twilio_accord


@pytest.fixture
def flow(accord: Accord):
    return accord.flows["demo"]


def run(accord: Accord, *args: str) -> Result:
    result = CliRunner().invoke(main, list(args), obj=Services(accord), catch_exceptions=False)
    assert result.exit_code == 0, result.output
    return result


def die_asking(accord: Accord, flow, phone: str, *, after: bool) -> None:
    """Ask `phone` with the worker killed before its request reaches the provider, or just after."""
    gateway, accord.gateway = accord.gateway, DyingGateway(accord.gateway, after=after)
    try:
        with pytest.raises(Killed):
            ask(accord, flow, phone, origin=ORIGIN)
    finally:
        accord.gateway = gateway


def consented(accord: Accord, flow, phone: str) -> None:
    """Bring `phone` to consented, content 1 not sent (its YES came after hours)."""
    accord.store.claim(flow, phone, window_open=True)
    accord.store.record_sent(flow, phone, "SM" + phone[-8:] * 4, flow.texts.consent_request, in_flight=0)
    accord.store.step([flow], phone, "yes", inbound=True, window_open=False)


def story(accord: Accord, flow, phone: str) -> list[str]:
    return [fields["event"] for _, fields in accord.store.ledger(flow.id) if fields.get("phone") == phone]


def sent_to(twilio: TwilioServer, phone: str) -> list[str]:
    return [message["sid"] for message in twilio.messages if message["to"] == phone]


# -- Killed between the claim and the send: asked again, once ------------------------------------------------------


def test_a_number_claimed_by_a_worker_killed_before_sending_is_asked_again_once_after_the_sweep(
        accord: Accord, flow, twilio: TwilioServer, clock: Clock):
    """Guard: the in-flight entry step.lua writes with the claim, and settle's give-back and queueing."""
    die_asking(accord, flow, VOTER, after=False)
    assert accord.store.state(flow, VOTER) == "asked" and twilio.messages == []
    assert witness.sweep(accord) == {}  # a send may still be under way: the grace period first
    clock.advance(seconds=witness.GRACE)

    assert witness.sweep(accord) == {"sent again": 1}
    assert accord.store.state(flow, VOTER) == "new"
    work(accord)
    assert len(sent_to(twilio, VOTER)) == 1 and accord.store.state(flow, VOTER) == "asked"
    assert story(accord, flow, VOTER) == [f"ask:{ORIGIN}", "release", f"ask:{ORIGIN}", "sent"]  # the same import
    assert accord.store.in_flight(flow) == [] and witness.sweep(accord) == {}
    funnel = accord.store.funnel(flow)
    assert (funnel["sent"], funnel["witness:again"], funnel.get("witness:found", 0)) == (1, 1, 0)
    assert accord.store.verify_ledger(flow.id) is None


def test_a_request_given_back_waits_for_its_window_like_any_other(accord: Accord, flow, twilio, clock: Clock):
    """Guard: the region the entry keeps, which the batch queued again carries (Guadeloupe is 5 h behind)."""
    clock.set(dt.datetime(2026, 12, 1, 13, 0, tzinfo=dt.UTC))  # 14:00 in Paris, 09:00 in Guadeloupe
    gateway, accord.gateway = accord.gateway, DyingGateway(accord.gateway, after=False)
    with pytest.raises(Killed):
        ask(accord, flow, VOTER, region="G")
    accord.gateway = gateway
    clock.set(dt.datetime(2026, 12, 2, 1, 0, tzinfo=dt.UTC))  # 02:00 in Paris, still 21:00 in Guadeloupe
    assert witness.sweep(accord) == {"sent again": 1}
    work(accord)
    assert len(sent_to(twilio, VOTER)) == 1


# -- Killed after the provider took it: recorded with the provider's sid, never sent again ---------------------------


def test_a_request_the_provider_took_before_the_worker_died_is_recorded_with_its_sid_and_not_sent_again(
        accord: Accord, flow, twilio: TwilioServer, clock: Clock):
    """Guard: settle's lookup at the provider (found: record_sent with its sid), and append.lua's HDEL."""
    die_asking(accord, flow, VOTER, after=True)
    (sid,) = sent_to(twilio, VOTER)
    assert story(accord, flow, VOTER) == [f"ask:{ORIGIN}"]  # it went out, and nothing says so
    clock.advance(seconds=witness.GRACE)

    assert witness.sweep(accord) == {"found at the provider": 1}
    sent = [fields for _, fields in accord.store.ledger(flow.id) if fields.get("event") == "sent"]
    assert [(fields["sid"], fields["state"]) for fields in sent] == [
        (sid, f"found at the provider, taken {TUESDAY_MORNING.astimezone(dt.UTC).isoformat()}")]
    assert accord.store.message_status(sid) == "queued"  # its status callbacks find it
    assert accord.store.in_flight(flow) == [] and witness.sweep(accord) == {}
    work(accord)
    assert sent_to(twilio, VOTER) == [sid]
    funnel = accord.store.funnel(flow)
    assert (funnel["sent"], funnel["witness:found"], funnel.get("witness:again", 0)) == (1, 1, 0)
    assert accord.store.verify_ledger(flow.id) is None


def test_a_request_still_queued_at_the_provider_is_found_and_not_sent_again(
        accord: Accord, flow, twilio: TwilioServer, clock: Clock):
    """Guard: no DateSent filter in TwilioGateway.sent_to (a text in Twilio's queue has no date_sent yet)."""
    twilio.hold(VOTER)
    die_asking(accord, flow, VOTER, after=True)
    clock.advance(seconds=witness.GRACE)
    assert witness.sweep(accord) == {"found at the provider": 1}
    work(accord)
    assert len(sent_to(twilio, VOTER)) == 1


def test_another_text_to_the_voter_meanwhile_is_not_taken_for_its_request(
        accord: Accord, flow, twilio: TwilioServer, clock: Clock):
    """Guard: settle matches what the provider took by its text (same_text), not by number and time alone."""
    die_asking(accord, flow, VOTER, after=False)
    accord.gateway.send(VOTER, flow.texts.help, sender=flow.sender)  # an answer to a text of theirs, say
    clock.advance(seconds=witness.GRACE)
    assert witness.sweep(accord) == {"sent again": 1}
    work(accord)
    assert [m["body"] for m in twilio.messages] == [flow.texts.help, flow.texts.consent_request]


@pytest.mark.parametrize(("body", "text", "same"), [
    ("Liste Demo : acceptez-vous ?", "Liste Demo : acceptez-vous ?", True),
    ("Liste Démo : acceptez-vous ?", "Liste Demo - acceptez-vous ?", True),  # what an encoding changes
    ("Liste Demo : acceptez-vous ? Reply STOP to unsubscribe", "Liste Demo : acceptez-vous ?", True),
    ("Liste Demo : merci, c'est noté.", "Liste Demo : acceptez-vous ?", False),
    ("Anything", "", False),
])
def test_a_text_the_provider_took_is_known_by_its_letters_and_digits(body: str, text: str, same: bool):
    assert witness.same_text(body, text) is same


# -- Content: the release is the claim -------------------------------------------------------------------------------


@pytest.mark.parametrize("after", [False, True], ids=["killed-before-the-send", "killed-after-the-provider-took-it"])
def test_content_a_killed_worker_released_goes_exactly_once(accord: Accord, flow, twilio: TwilioServer,
                                                            clock: Clock, after: bool):
    """Guard: release.lua's in-flight entry, give_back.lua's (for the witness) and settle's lookup."""
    consented(accord, flow, VOTER)
    gateway, accord.gateway = accord.gateway, DyingGateway(accord.gateway, after=after)
    with pytest.raises(Killed):
        deliver(accord, flow, VOTER, 1)
    accord.gateway = gateway
    assert accord.store.in_flight(flow)[0][:2] == (VOTER, 1)
    clock.advance(seconds=witness.GRACE)

    assert witness.sweep(accord) == {"found at the provider" if after else "sent again": 1}
    work(accord)
    (sid,) = sent_to(twilio, VOTER)
    assert [m["body"] for m in twilio.messages] == [flow.texts.content[0]]
    expected = ["content:1", "sent"] if after else ["content:1", "give_back:1", "content:1", "sent"]
    assert story(accord, flow, VOTER)[-len(expected):] == expected
    assert [f["sid"] for _, f in accord.store.ledger(flow.id) if f.get("event") == "sent"][-1] == sid
    assert accord.store.funnel(flow)["content:1"] == 1 and accord.store.in_flight(flow) == []
    run(accord, "content", "send", "demo")
    work(accord)
    assert len(twilio.messages) == 1  # nobody gets it twice
    assert accord.store.verify_ledger(flow.id) is None


# -- What the provider cannot say, and what moved meanwhile ------------------------------------------------------------


def test_a_provider_that_cannot_say_leaves_the_claim_for_the_next_sweep(accord: Accord, flow, twilio, clock: Clock):
    """Guard: `except SendError` in witness.settle (the entry stays; the sweep carries on)."""
    die_asking(accord, flow, VOTER, after=False)
    die_asking(accord, flow, OTHER, after=True)
    clock.advance(seconds=witness.GRACE)
    gateway, accord.gateway = accord.gateway, SilentProvider(accord.gateway)
    assert witness.sweep(accord) == {"provider did not say": 2}
    accord.gateway = gateway
    assert sorted(phone for phone, _, _ in accord.store.in_flight(flow)) == [VOTER, OTHER]
    assert accord.store.state(flow, VOTER) == "asked"
    assert witness.sweep(accord) == {"sent again": 1, "found at the provider": 1}
    work(accord)
    assert Counter(m["to"] for m in twilio.messages) == {VOTER: 1, OTHER: 1}


def test_a_sweep_that_read_a_claim_since_settled_and_claimed_again_gives_back_nothing(
        accord: Accord, flow, twilio, clock: Clock):
    """Guard: step.lua's check that a release the witness asks for names the entry still there."""
    die_asking(accord, flow, VOTER, after=False)
    clock.advance(seconds=witness.GRACE)
    ((_, _, read),) = accord.store.in_flight(flow)  # a slow sweep reads it ...
    assert witness.sweep(accord) == {"sent again": 1}  # ... another settles it, and a worker claims it again
    clock.advance(seconds=1)
    die_asking(accord, flow, VOTER, after=False)
    ((_, _, now),) = accord.store.in_flight(flow)

    assert witness.settle(accord, flow, witness.claim_of(VOTER, 0, read)) == "moved on"
    assert accord.store.state(flow, VOTER) == "asked" and accord.store.in_flight(flow) == [(VOTER, 0, now)]
    clock.advance(seconds=witness.GRACE)
    assert witness.sweep(accord) == {"sent again": 1}
    work(accord)  # two batches queued again: the first claims it, the second finds it asked
    assert len(sent_to(twilio, VOTER)) == 1


def test_a_voter_who_stopped_then_started_again_meanwhile_is_not_asked_a_second_time(accord: Accord, flow, twilio,
                                                                                      clock: Clock):
    """Guard: step.lua's check that the claim an entry names still stands (the number asked, at that time)."""
    die_asking(accord, flow, VOTER, after=False)
    sms = SMS(create_app(accord.config, gateway=accord.gateway, clock=clock).test_client())
    clock.advance(seconds=60)
    assert answers(sms.send(VOTER, "STOP")) == [flow.texts.stopped]
    clock.advance(seconds=60)
    assert flow.texts.consent_request in answers(sms.send(VOTER, "START"))  # asked again, by its answer
    clock.advance(seconds=witness.GRACE)

    assert witness.sweep(accord) == {"moved on": 1}
    assert accord.store.state(flow, VOTER) == "asked" and accord.store.in_flight(flow) == []
    work(accord)
    assert twilio.messages == []


def test_a_claim_given_back_by_a_sweep_that_died_before_queueing_it_is_queued_by_the_next(
        accord: Accord, flow, twilio, clock: Clock):
    """Guard: the "again|" entry step.lua leaves when the witness gives a claim back (and queue_in_flight's check)."""
    die_asking(accord, flow, VOTER, after=False)
    clock.advance(seconds=witness.GRACE)
    ((_, _, entry),) = accord.store.in_flight(flow)
    assert accord.store.step([flow], VOTER, "release", body="not found", in_flight=entry).changed  # then it died
    assert accord.store.in_flight(flow) == [(VOTER, 0, witness.AGAIN + entry)]
    given_back = witness.claim_of(VOTER, 0, witness.AGAIN + entry)

    assert witness.sweep(accord) == {"sent again": 1}
    assert witness.settle(accord, flow, given_back) == "moved on"  # a sweep alongside queues nothing more
    work(accord)
    assert len(sent_to(twilio, VOTER)) == 1 and accord.store.in_flight(flow) == []


def test_a_send_whose_outcome_is_unknown_stays_in_flight_and_the_sweep_settles_it(accord: Accord, flow, twilio,
                                                                                   clock: Clock):
    """Guard: `in_flight=None if unknown ...` in sending._send (a 5xx or a timeout settles nothing)."""
    twilio.fail_next(1, status=500, code=20500)  # Twilio took nothing, and said so badly
    twilio.fail_to(OTHER, status=400, code=21614)  # not a mobile: that outcome is known
    assert ask(accord, flow, VOTER) == "claimed, outcome unknown"
    assert ask(accord, flow, OTHER) == "undeliverable"
    assert [phone for phone, _, _ in accord.store.in_flight(flow)] == [VOTER]
    clock.advance(seconds=witness.GRACE)
    assert witness.sweep(accord) == {"sent again": 1}
    work(accord)
    assert sent_to(twilio, VOTER) != [] and sent_to(twilio, OTHER) == []
    assert accord.store.in_flight(flow) == []


# -- Erasure and retention reach it -------------------------------------------------------------------------------


@pytest.mark.parametrize("rule", ["erasure", "retention"])
def test_a_number_in_flight_is_readable_nowhere_once_erased_or_purged(accord: Accord, flow, clock: Clock,
                                                                       redis_client, redis_files, tmp_path: Path,  # noqa: F811
                                                                       rule: str):
    """Guard: erase.lua's HDEL of the flow's in-flight entries (person erase, and purge, both go through it)."""
    die_asking(accord, flow, VOTER, after=False)
    assert redis_client.hkeys(in_flight_key(flow.id)) == [f"{VOTER}|0".encode()]
    if rule == "erasure":
        run(accord, "person", "erase", VOTER, "--yes")
    else:
        clock.advance(days=61)  # no answer, 60 days after the request
        assert "no answer: 60 days after the request" in run(accord, "purge").output
    assert mentions(redis_client, tmp_path, redis_files) == []
    assert accord.store.in_flight(flow) == [] and witness.sweep(accord) == {}


# -- Who sweeps, and what `round status` says -----------------------------------------------------------------------


def test_round_status_counts_what_was_found_at_the_provider_sent_again_and_still_in_flight(
        accord: Accord, flow, twilio, clock: Clock):
    """Guard: the three rows in `round status`, and the sweep `round resume` runs."""
    die_asking(accord, flow, VOTER, after=False)
    die_asking(accord, flow, OTHER, after=True)
    clock.advance(seconds=witness.GRACE)
    die_asking(accord, flow, "+33612980003", after=False)  # just now: maybe still sending
    output = run(accord, "round", "resume", "demo").output
    assert "settled with the provider: 1 found at the provider, 1 sent again." in output
    status = run(accord, "round", "status", "demo").output
    for row in ("found sent at the provider: 1", "not found there, sent again: 1", "in flight now: 1"):
        assert row in status, status


def test_workers_settle_the_claims_dead_workers_left_in_flight_by_themselves(accord: Accord, flow, twilio,
                                                                             clock: Clock):
    """Guard: witness.sweep in SendingWorker.run_maintenance_tasks."""
    die_asking(accord, flow, VOTER, after=False)
    clock.advance(seconds=witness.GRACE)
    SendingWorker(accord).run_maintenance_tasks()
    assert accord.store.state(flow, VOTER) == "new" and accord.store.in_flight(flow) == []
    work(accord)
    assert len(sent_to(twilio, VOTER)) == 1


# -- The gateways' lookups -------------------------------------------------------------------------------------------


def test_twilio_says_what_it_took_for_a_number_from_a_sender_or_its_messaging_service(twilio: TwilioServer):
    """Guard: the sender filter in TwilioGateway.sent_to (From, or the Messaging Service of each text)."""
    twilio.reset()
    gateway = TwilioGateway(twilio.account_sid, twilio.auth_token, api_url=twilio.base_url, timeout=2)
    service = "MG" + "1" * 32
    since = dt.datetime.now(dt.UTC) - dt.timedelta(seconds=2)
    ours = gateway.send(VOTER, "ours", sender="38000")
    by_service = gateway.send(VOTER, "by the service", sender=service)
    gateway.send(VOTER, "another sender", sender="38123")
    gateway.send(OTHER, "another voter", sender="38000")
    assert [(sid, body) for sid, _, body in gateway.sent_to(VOTER, "38000", since)] == [(ours, "ours")]
    assert [(sid, body) for sid, _, body in gateway.sent_to(VOTER, service, since)] == [(by_service, "by the service")]
    assert gateway.sent_to(VOTER, "38000", dt.datetime.now(dt.UTC) + dt.timedelta(minutes=1)) == []
    # The local server lists outbound texts by To, From and DateSent> as Twilio does: once sent.
    listed = gateway.client.messages.list(to=VOTER, from_="38000", date_sent_after=since)
    assert [m.sid for m in listed] == [ours] and listed[0].date_sent is not None
    twilio.hold(OTHER)  # what it takes for OTHER now waits in the queue, undated
    held = gateway.send(OTHER, "held", sender="38000")
    assert [m.body for m in gateway.client.messages.list(to=OTHER, date_sent_after=since)] == ["another voter"]
    assert held in [sid for sid, _, _ in gateway.sent_to(OTHER, "38000", since)]


def test_the_local_outbox_says_what_it_kept(config, clock: Clock, redis_client):
    accord: Accord = create_app(config, clock=clock).extensions["accord"]  # no provider: the outbox
    flow = accord.flows["demo"]
    die_asking(accord, flow, VOTER, after=True)
    die_asking(accord, flow, OTHER, after=False)
    clock.advance(seconds=witness.GRACE)
    assert witness.sweep(accord) == {"found at the provider": 1, "sent again": 1}
    assert [m["to"] for m in accord.store.outbox()] == [VOTER]
