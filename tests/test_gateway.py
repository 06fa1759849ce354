"""The Twilio gateway, driven by the real twilio-python client against a local Twilio."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest
import requests
from twilio_server import TwilioServer

from bot.gateways import SendError
from bot.gateways.twilio import TwilioGateway

OUR_NUMBER = "+33612345678"
SHORT_CODE = "38123"
SERVICE = "MG" + "0" * 32
VOTER = "+33698765432"


@pytest.fixture(scope="module")
def server() -> Iterator[TwilioServer]:
    with TwilioServer() as twilio:
        yield twilio


@pytest.fixture(autouse=True)
def fresh(server: TwilioServer) -> None:
    server.reset()


@pytest.fixture
def gateway(server: TwilioServer) -> TwilioGateway:
    return TwilioGateway(server.account_sid, server.auth_token, api_url=server.base_url, timeout=5)


def refusal(gateway: TwilioGateway, to: str = VOTER) -> SendError:
    with pytest.raises(SendError) as caught:
        gateway.send(to, "Bonjour", sender=SHORT_CODE)
    return caught.value


def test_a_send_returns_the_sid_and_carries_every_option(
    server: TwilioServer, gateway: TwilioGateway
) -> None:
    sid = gateway.send(
        VOTER, "Bonjour, acceptez-vous nos SMS ?", sender=SHORT_CODE, validity_period=3600,
        status_callback="https://accord.example/sms/status",
    )

    assert sid.startswith("SM") and len(sid) == 34
    [message] = server.messages
    assert message["sid"] == sid
    assert message["params"] == {
        "To": VOTER,
        "From": SHORT_CODE,
        "Body": "Bonjour, acceptez-vous nos SMS ?",
        "ValidityPeriod": "3600",
        "StatusCallback": "https://accord.example/sms/status",
    }
    assert message["status"] == "queued"
    assert (message["direction"], message["num_segments"]) == ("outbound-api", "1")


def test_a_messaging_service_sender_goes_as_messaging_service_sid(
    server: TwilioServer, gateway: TwilioGateway
) -> None:
    gateway.send(VOTER, "Bonjour", sender=SERVICE)

    [message] = server.messages
    assert message["params"] == {"To": VOTER, "MessagingServiceSid": SERVICE, "Body": "Bonjour"}
    # A Messaging Service picks the sender after accepting the request.
    assert (message["messaging_service_sid"], message["from"]) == (SERVICE, None)
    assert message["status"] == "accepted"


def test_a_recipient_who_replied_stop_to_twilio_is_an_opt_out(
    server: TwilioServer, gateway: TwilioGateway
) -> None:
    server.fail_to(VOTER, status=400, code=21610)

    error = refusal(gateway)

    assert (error.code, error.status, error.opted_out) == (21610, 400, True)
    assert not error.retryable and not error.undeliverable
    assert server.messages == []


@pytest.mark.parametrize("code", [21614, 21211])
def test_a_landline_or_invalid_number_is_undeliverable(
    code: int, server: TwilioServer, gateway: TwilioGateway
) -> None:
    server.fail_to(VOTER, status=400, code=code)

    error = refusal(gateway)

    assert (error.code, error.undeliverable, error.retryable, error.opted_out) == (code, True, False, False)


def test_throttling_is_retryable_and_sends_nothing(server: TwilioServer, gateway: TwilioGateway) -> None:
    server.fail_next(1, status=429, code=20429)

    error = refusal(gateway)

    assert (error.status, error.code, error.retryable) == (429, 20429, True)
    assert server.messages == []
    assert len(server.requests) == 1  # twilio-python does not retry a POST by itself
    assert gateway.send(VOTER, "Bonjour", sender=SHORT_CODE) == server.messages[0]["sid"]


@pytest.mark.parametrize(
    ("status", "code"),
    [(500, 20500), (503, 20503), (400, 21611), (400, 30001)],
    ids=["server-error", "unavailable", "sender-queue-full", "queue-overflow"],
)
def test_provider_trouble_is_retryable(
    status: int, code: int, server: TwilioServer, gateway: TwilioGateway
) -> None:
    server.fail_next(1, status=status, code=code)

    error = refusal(gateway)

    assert (error.status, error.code, error.retryable, error.undeliverable) == (status, code, True, False)


def test_a_wrong_auth_token_is_refused_with_401(server: TwilioServer) -> None:
    intruder = TwilioGateway(server.account_sid, "0" * 32, api_url=server.base_url)

    error = refusal(intruder)

    assert (error.status, error.code, error.retryable) == (401, 20003, False)
    assert server.messages == []


def test_a_slow_answer_is_retryable_though_the_text_may_have_gone(server: TwilioServer) -> None:
    impatient = TwilioGateway(server.account_sid, server.auth_token, api_url=server.base_url, timeout=0.5)
    server.delay(2)

    error = refusal(impatient)

    assert (error.status, error.code, error.retryable) == (None, None, True)
    # Twilio may have accepted it before the answer got lost: a blind retry can send it twice.
    assert len(server.messages) == 1


def test_a_provider_that_cannot_be_reached_is_retryable() -> None:
    with TwilioServer() as gone:
        api_url, sid, token = gone.base_url, gone.account_sid, gone.auth_token

    error = refusal(TwilioGateway(sid, token, api_url=api_url, timeout=1))

    assert (error.status, error.retryable) == (None, True)


@pytest.mark.parametrize(
    ("body", "segments"),
    [
        ("a" * 160, "1"),
        ("a" * 161, "2"),
        ("[" * 80, "1"),  # GSM-7 extension characters cost two septets
        ("é" * 160, "1"),  # é is in GSM-7
        ("ê" * 70, "1"),  # ê is not: the whole text goes UCS-2
        ("Vous êtes inscrit" + "." * 54, "2"),
        ("ê" * 134, "2"),
        ("ê" * 135, "3"),
    ],
)
def test_segments_follow_the_encoding(
    body: str, segments: str, server: TwilioServer, gateway: TwilioGateway
) -> None:
    gateway.send(VOTER, body, sender=SHORT_CODE)

    [message] = server.messages
    assert (message["body"], message["num_segments"]) == (body, segments)


def test_inbound_since_pages_through_everything_received_on_our_number(
    server: TwilioServer, gateway: TwilioGateway
) -> None:
    since = datetime(2026, 3, 1, 9, 0, tzinfo=UTC)
    for i in range(120):
        server.add_inbound(f"+336{i:08d}", OUR_NUMBER, f"OUI {i}", date_sent=since + timedelta(minutes=i))
    server.add_inbound(VOTER, OUR_NUMBER, "too early", date_sent=since - timedelta(seconds=1))
    server.add_inbound(VOTER, "+33600000000", "another number", date_sent=since + timedelta(minutes=5))
    gateway.send(OUR_NUMBER, "outbound, never sent yet", sender=SHORT_CODE)

    received = gateway.inbound_since(OUR_NUMBER, since, page_size=25)

    assert [m["body"] for m in received] == [f"OUI {i}" for i in range(120)]
    assert received[0] == {
        "sid": received[0]["sid"], "from": "+33600000000", "to": OUR_NUMBER, "body": "OUI 0",
        "date_sent": since,
    }
    pages = [r for r in server.requests if r["method"] == "GET"]
    assert len(pages) == 5
    assert all(p["query"]["To"] == OUR_NUMBER and p["query"]["PageSize"] == "25" for p in pages)


def test_inbound_since_keeps_the_newest_when_the_limit_bites(
    server: TwilioServer, gateway: TwilioGateway
) -> None:
    since = datetime(2026, 3, 1, 9, 0, tzinfo=UTC)
    for i in range(40):
        server.add_inbound(VOTER, OUR_NUMBER, f"OUI {i}", date_sent=since + timedelta(minutes=i))

    received = gateway.inbound_since(OUR_NUMBER, since, limit=30, page_size=7)

    assert [m["body"] for m in received] == [f"OUI {i}" for i in range(10, 40)]


def test_inbound_since_reads_a_paris_time_as_the_instant_it_is(
    server: TwilioServer, gateway: TwilioGateway
) -> None:
    since = datetime(2026, 7, 14, 12, 0, tzinfo=ZoneInfo("Europe/Paris"))  # 10:00 UTC
    server.add_inbound(VOTER, OUR_NUMBER, "before", date_sent=datetime(2026, 7, 14, 9, 59, tzinfo=UTC))
    server.add_inbound(VOTER, OUR_NUMBER, "after", date_sent=datetime(2026, 7, 14, 10, 1, tzinfo=UTC))

    assert [m["body"] for m in gateway.inbound_since(OUR_NUMBER, since)] == ["after"]


def test_inbound_since_refuses_a_naive_time(gateway: TwilioGateway) -> None:
    with pytest.raises(ValueError, match="timezone-aware"):
        gateway.inbound_since(OUR_NUMBER, datetime(2026, 3, 1, 9, 0))


def test_inbound_since_reports_a_refused_listing(server: TwilioServer) -> None:
    intruder = TwilioGateway(server.account_sid, "0" * 32, api_url=server.base_url)

    with pytest.raises(SendError) as caught:
        intruder.inbound_since(OUR_NUMBER, datetime(2026, 3, 1, tzinfo=UTC))

    assert (caught.value.status, caught.value.code, caught.value.retryable) == (401, 20003, False)


@pytest.mark.parametrize(
    ("form", "code"),
    [
        ({"From": SHORT_CODE, "Body": "Bonjour"}, 21604),
        ({"To": VOTER, "From": SHORT_CODE}, 21602),
        ({"To": VOTER, "Body": "Bonjour"}, 21603),
    ],
)
def test_the_local_twilio_refuses_incomplete_sends_like_twilio(
    form: dict[str, str], code: int, server: TwilioServer
) -> None:
    answer = requests.post(
        server.base_url + server.messages_path, data=form, auth=(server.account_sid, server.auth_token),
        timeout=5,
    )

    assert answer.status_code == 400
    assert answer.json() == {
        "code": code, "message": answer.json()["message"], "more_info": f"https://www.twilio.com/docs/errors/{code}",
        "status": 400,
    }


def test_the_local_twilio_answers_404_elsewhere(server: TwilioServer) -> None:
    answer = requests.get(server.base_url + "/healthz", timeout=5)

    assert (answer.status_code, answer.json()["code"], answer.json()["status"]) == (404, 20404, 404)
