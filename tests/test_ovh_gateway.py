"""The OVHcloud gateway: the official `ovh` client against a local OVHcloud-shaped server that checks
its signatures; each of OVHcloud's answers becomes the SendError the sending code already knows."""

from __future__ import annotations

import dataclasses
import datetime as dt

import pytest

from bot import Accord, build
from bot.config import OvhSettings
from bot.gateways import SendError
from bot.gateways.ovh import OvhGateway, sid_of
from bot.sending import BUSY, ask
from bot.witness import FOUND, GRACE, sweep
from tests.conftest import OVH_SECRET, OvhProvider
from tests.ovh_server import OvhServer

VOTER = "+33612980001"
SINCE = dt.timedelta(minutes=5)


@pytest.fixture
def ovh(ovh_server: OvhServer) -> OvhServer:
    ovh_server.reset()
    return ovh_server


def settings(server: OvhServer, **changes: str) -> OvhSettings:
    chosen = OvhSettings(server.endpoint, server.application_key, server.application_secret, server.consumer_key,
                         server.service, (OVH_SECRET,))
    return dataclasses.replace(chosen, **changes)


@pytest.fixture
def gateway(ovh: OvhServer) -> OvhGateway:
    return OvhGateway(settings(ovh), timeout=2)


def since() -> dt.datetime:
    return dt.datetime.now(dt.UTC) - SINCE


def refusal(gateway: OvhGateway, to: str = VOTER) -> SendError:
    with pytest.raises(SendError) as caught:
        gateway.send(to, "Liste Essai : message. STOP au 38000", sender="38000")
    return caught.value


def test_a_text_goes_as_a_job_that_lets_ovh_add_no_stop_clause(ovh: OvhServer, gateway: OvhGateway) -> None:
    text = "Liste Essai : acceptez-vous ? OUI ou STOP"
    sid = gateway.send(VOTER, text, sender="38000", validity_period=3599, status_callback="https://x.org/cb")
    (job,) = ovh.jobs
    assert sid == sid_of(job["id"]) and sid.startswith("OVH")
    assert job["body"] == {
        "message": text, "receivers": [VOTER], "noStopClause": True, "senderForResponse": True,
        "charset": "UTF-8", "coding": "7bit", "class": "phoneDisplay", "priority": "high", "tag": "38000",
        "validityPeriod": 59, "callBack": "https://x.org/cb"}  # minutes: the window, rounded down
    assert [r["path"] for r in ovh.requests] == ["/1.0/auth/time", f"/1.0/sms/{ovh.service}/jobs"]


@pytest.mark.parametrize(("seconds", "minutes"), [(None, 2880), (86400 * 3, 2880), (3599, 59), (120, 2), (61, 1),
                                                  (1, 1), (0, 1)])
def test_a_validity_is_whole_minutes_never_past_it_and_none_but_no_limit_is_ovh_s_own_48_hours(
        ovh: OvhServer, gateway: OvhGateway, seconds: int | None, minutes: int) -> None:
    gateway.send(VOTER, "Liste Essai : message. STOP au 38000", sender="38000", validity_period=seconds)
    assert ovh.jobs[-1]["body"]["validityPeriod"] == minutes  # a window shut (0) never held two days


def test_a_text_outside_gsm7_goes_as_8bit_and_a_virtual_number_sends_from_itself(ovh: OvhServer,
                                                                                 gateway: OvhGateway) -> None:
    gateway.send(VOTER, "Liste Essai : ça commence. STOP au +33700000001", sender="+33700000001")
    (job,) = ovh.jobs
    assert job["sender"] == "33700000001"  # /sms/{service}/virtualNumbers/33700000001/jobs
    assert job["body"]["coding"] == "8bit" and "senderForResponse" not in job["body"]


@pytest.mark.parametrize(("change", "code"), [
    ({"application_secret": "wrongsecret"}, "INVALID_SIGNATURE"),
    ({"consumer_key": "otherconsumer"}, "INVALID_CREDENTIAL"),
    ({"application_key": "otherappkey"}, "INVALID_KEY"),
], ids=["signature", "consumer key", "application key"])
def test_a_request_not_signed_with_our_keys_is_refused_and_nothing_is_sent(ovh: OvhServer, change: dict[str, str],
                                                                           code: str) -> None:
    error = refusal(OvhGateway(settings(ovh, **change), timeout=2))
    assert error.status in (400, 403) and not error.retryable and not error.opted_out
    assert ovh.jobs == []


def test_a_stale_timestamp_is_refused_as_ovh_refuses_it(ovh: OvhServer, gateway: OvhGateway) -> None:
    gateway.client._time_delta = -3600  # a client whose idea of the API's time is an hour off
    error = refusal(gateway)
    assert (error.status, error.message) == (400, "Query out of time")
    assert ovh.jobs == []


@pytest.mark.parametrize(("script", "opted_out", "undeliverable", "unprocessed", "retryable"), [
    (lambda s: s.fail_next(1, 429, "Too many requests"), False, False, True, True),
    (lambda s: s.fail_next(1, 402, "Not enough credits to send this SMS"), False, False, True, True),
    (lambda s: s.fail_next(1, 500, "Internal server error"), False, False, False, True),
    (lambda s: s.invalid(VOTER), False, True, False, False),
    (lambda s: s.blacklist(VOTER), True, False, False, False),
    (lambda s: s.fail_next(1, 400, "Receiver is blacklisted"), True, False, False, False),
], ids=["throttled", "no credits", "5xx", "invalid receiver", "on the STOP list", "refused as blacklisted"])
def test_ovh_answers_map_onto_the_shared_codes(ovh: OvhServer, gateway: OvhGateway, script, opted_out: bool,
                                              undeliverable: bool, unprocessed: bool, retryable: bool) -> None:
    script(ovh)
    error = refusal(gateway)
    assert (error.opted_out, error.undeliverable, error.unprocessed, error.retryable) == (
        opted_out, undeliverable, unprocessed, retryable)
    assert ovh.jobs == []


def test_a_timeout_may_have_sent_and_the_witness_finds_the_text(ovh: OvhServer) -> None:
    slow = OvhGateway(settings(ovh), timeout=0.3)
    slow.sent_to(VOTER, "38000", since())  # asks /auth/time before the server turns slow
    ovh.delay(1.0)
    error = refusal(slow)
    assert error.status is None and error.retryable and not error.unprocessed  # never sent again blindly
    ovh.delay(0)
    ((sid, _, body),) = OvhGateway(settings(ovh), timeout=2).sent_to(VOTER, "38000", since())
    assert sid == sid_of(ovh.jobs[0]["id"]) and body == "Liste Essai : message. STOP au 38000"


def test_the_witness_sees_only_texts_to_the_number_from_the_sender_since_the_claim(ovh: OvhServer,
                                                                                   gateway: OvhGateway) -> None:
    ovh.clock = lambda: (dt.datetime.now(dt.UTC) - dt.timedelta(hours=1)).timestamp()
    gateway.send(VOTER, "old", sender="38000")  # before the claim
    ovh.clock = lambda: dt.datetime.now(dt.UTC).timestamp()
    gateway.send(VOTER, "first", sender="38000")
    gateway.send(VOTER, "other short code", sender="38001")
    gateway.send("+33612980002", "another voter", sender="38000")
    gateway.send(VOTER, "second", sender="38000")
    assert [body for _, _, body in gateway.sent_to(VOTER, "38000", since())] == ["first", "second"]


def test_the_stop_list_and_incoming_texts_are_read_in_e164(ovh: OvhServer, gateway: OvhGateway) -> None:
    ovh.blacklist(VOTER)
    first = ovh.add_inbound("0033612980002", "OUI")
    second = ovh.add_inbound(VOTER, "STOP")
    ovh.add_inbound(VOTER, "to a virtual number", to="33700000001")
    assert [number for number, when in gateway.blacklist() if when is not None] == [VOTER]
    received = gateway.inbound_since("38000", since())
    assert [(m["sid"], m["from"], m["body"]) for m in received] == [
        (sid_of(first), "+33612980002", "OUI"), (sid_of(second), VOTER, "STOP")]
    assert [m["body"] for m in gateway.inbound_since("+33700000001", since())] == ["to a virtual number"]


# Through the sending code: OVHcloud's answers have the effects Twilio's have.

def test_a_number_on_ovh_s_stop_list_is_recorded_as_an_objection_when_asked(ovh_accord: Accord,
                                                                           ovh_server: OvhServer) -> None:
    flow = ovh_accord.flows["demo"]
    ovh_server.blacklist(VOTER)
    assert ask(ovh_accord, flow, VOTER) == "opted out at the provider"
    assert ovh_accord.store.is_suppressed(flow, VOTER)
    assert ovh_accord.store.state(flow, VOTER) == "opted_out"
    assert ovh_server.jobs == []


def test_a_throttled_send_is_given_back_and_never_lost(ovh_accord: Accord, ovh_server: OvhServer) -> None:
    flow = ovh_accord.flows["demo"]
    ovh_server.fail_next(4, 429)  # the first try and every retry in place
    assert ask(ovh_accord, flow, VOTER, sleep=lambda _: None) == BUSY
    assert ovh_accord.store.state(flow, VOTER) == "new"  # the claim is given back: a later batch asks
    assert ask(ovh_accord, flow, VOTER) == "sent"
    assert [job["receiver"] for job in ovh_server.jobs] == [VOTER]


def test_a_send_that_timed_out_is_found_by_the_witness_and_never_sent_twice(config, clock, redis_client,
                                                                            ovh_server: OvhServer) -> None:
    ovh_server.reset()
    config = OvhProvider(ovh_server).configure(config)
    gateway = OvhGateway(config.ovh, timeout=0.3)
    accord = build(config, gateway=gateway, clock=clock)
    flow = accord.flows["demo"]
    gateway.sent_to(VOTER, flow.sender, since())  # asks /auth/time before the server turns slow
    ovh_server.delay(1.0)
    assert ask(accord, flow, VOTER) == "claimed, outcome unknown"
    ovh_server.delay(0)
    clock.advance(seconds=GRACE + 1)
    assert sweep(accord) == {FOUND: 1}
    (job,) = ovh_server.jobs
    assert [entry["sid"] for entry in accord.store.person(VOTER)["demo"] if entry["event"] == "sent"] == [
        sid_of(job["id"])]
    assert sweep(accord) == {} and len(ovh_server.jobs) == 1


def test_an_answer_of_another_shape_is_a_send_that_may_have_gone(ovh: OvhServer, gateway: OvhGateway) -> None:
    ovh.garbled["/jobs"] = ["not", "a", "report"]
    error = refusal(gateway)
    assert error.status is None and not error.unprocessed  # never sent again blindly: the witness decides
    ovh.garbled = {"/outgoing": {"not": "a list"}}
    with pytest.raises(SendError):  # the witness asks again at its next sweep
        gateway.sent_to(VOTER, "38000", since())
    ovh.garbled = {}
    assert [body for _, _, body in gateway.sent_to(VOTER, "38000", since())] == [
        "Liste Essai : message. STOP au 38000"]
