"""The dev phone: a voter in the browser, answering through the real signed webhook, only without Twilio."""

from __future__ import annotations

import dataclasses
import datetime as dt
import re

import pytest

from bot import create_app
from bot.gateways.twilio import TwilioGateway
from bot.rounds import Origin, start_round
from bot.webhook import MESSAGE_SID
from tests.conftest import PARIS, TUESDAY_MORNING

VOTER = "+33612340001"
ROUTES = [("get", "/dev/phone"), ("get", "/dev/phone/thread?phone=%2B33612340001"), ("post", "/dev/phone/send")]


@pytest.fixture
def flow(accord):
    return accord.flows["demo"]


@pytest.fixture
def token(client) -> str:
    page = client.get("/dev/phone").get_data(as_text=True)
    return re.search(r'data-csrf="([^"]+)"', page).group(1)


def ask(accord, flow, phone: str = VOTER) -> None:
    """Do what a worker does for one number: claim it, send the request through the outbox, log it."""
    outcome = accord.store.claim(flow, phone, window_open=True)
    sid = accord.gateway.send(phone, outcome.texts[0], sender=flow.sender)
    accord.store.record_sent(flow, phone, sid, outcome.texts[0])


def test_with_twilio_configured_every_dev_route_is_404(config, clock, redis_client):
    twilio = dataclasses.replace(config, twilio_account_sid="AC" + "0" * 32)
    client = create_app(twilio, clock=clock).test_client()
    for method, path in ROUTES:
        assert getattr(client, method)(path).status_code == 404
    assert "/dev/phone" not in client.get("/console/login").get_data(as_text=True)


def test_with_another_gateway_injected_the_dev_phone_is_absent(config, clock, redis_client):
    gateway = TwilioGateway("AC" + "0" * 32, "token", api_url="http://127.0.0.1:9")
    client = create_app(config, gateway=gateway, clock=clock).test_client()
    for method, path in ROUTES:
        assert getattr(client, method)(path).status_code == 404


def test_the_page_offers_the_numbers_the_outbox_texted(client, accord, flow):
    ask(accord, flow)
    page = client.get("/dev/phone").get_data(as_text=True)
    assert f'data-number="{VOTER}"' in page and "38000" in page


def test_the_thread_shows_what_the_bot_sent(client, accord, flow):
    ask(accord, flow)
    thread = client.get("/dev/phone/thread", query_string={"phone": "06 12 34 00 01", "flow": "demo"}).json
    assert thread["state"] == "asked" and thread["phone"] == VOTER
    assert [(m["from"], m["body"]) for m in thread["messages"]] == [("bot", flow.texts.consent_request)]


def test_an_answer_goes_through_the_signed_webhook_and_joins_the_thread(client, accord, flow, token):
    ask(accord, flow)
    answer = client.post("/dev/phone/send", data={"phone": VOTER, "flow": "demo", "body": "oui"},
                         headers={"X-CSRF-Token": token})
    assert answer.status_code == 200
    assert answer.json["replies"] == [flow.texts.confirmation, flow.texts.content[0]]
    assert accord.store.state(flow, VOTER) == "consented"
    (entry,) = [e for _, e in accord.store.ledger(flow.id) if e["event"].startswith("in:")]
    assert entry["event"] == "in:YES" and MESSAGE_SID.match(entry["sid"]) and entry["text"] == "oui"
    thread = client.get("/dev/phone/thread", query_string={"phone": VOTER, "flow": "demo"}).json
    assert [(m["from"], m["body"]) for m in thread["messages"]] == [
        ("bot", flow.texts.consent_request), ("voter", "oui"),
        ("bot", flow.texts.confirmation), ("bot", flow.texts.content[0])]


def test_behind_a_proxy_the_signature_fits_the_forwarded_url(accord, flow, token, client):
    ask(accord, flow)
    forwarded = {"X-Forwarded-Proto": "https", "X-Forwarded-Host": "accord.example.org:8443"}
    answer = client.post("/dev/phone/send", data={"phone": VOTER, "flow": "demo", "body": "stop"},
                         headers={"X-CSRF-Token": token, **forwarded})
    assert answer.status_code == 200 and accord.store.state(flow, VOTER) == "opted_out"


def test_a_send_without_the_csrf_token_is_refused(client, accord, flow, token):
    ask(accord, flow)
    answer = client.post("/dev/phone/send", data={"phone": VOTER, "flow": "demo", "body": "oui"})
    assert answer.status_code == 400 and accord.store.state(flow, VOTER) == "asked"


@pytest.mark.parametrize("form, problem", [
    ({"phone": "01 45 67 89 10", "body": "oui"}, "not a mobile"),
    ({"phone": VOTER, "body": "  "}, "1 à 1600"),
    ({"phone": VOTER, "flow": "nope", "body": "oui"}, "aucune campagne"),
])
def test_a_bad_send_is_refused_with_the_reason(client, token, form, problem):
    answer = client.post("/dev/phone/send", data=form, headers={"X-CSRF-Token": token})
    assert answer.status_code == 400 and problem in answer.json["error"]


@pytest.mark.parametrize("address", ["192.0.2.10", "10.0.0.1", "::ffff:192.0.2.10", "2001:db8::1", ""])
def test_a_client_on_another_machine_gets_404_from_every_dev_route(client, accord, flow, address):
    ask(accord, flow)
    for method, path in ROUTES:
        answer = getattr(client, method)(path, environ_base={"REMOTE_ADDR": address})
        assert answer.status_code == 404, path
    assert accord.store.state(flow, VOTER) == "asked"
    assert "/dev/phone" not in client.get("/console/login", environ_base={"REMOTE_ADDR": address}).get_data(
        as_text=True)


def test_x_forwarded_for_neither_opens_nor_closes_the_dev_phone(client):
    remote = client.get("/dev/phone", environ_base={"REMOTE_ADDR": "192.0.2.10"},
                        headers={"X-Forwarded-For": "127.0.0.1"})
    assert remote.status_code == 404  # ProxyFix made remote_addr 127.0.0.1; the socket's peer still counts
    local = client.get("/dev/phone", environ_base={"REMOTE_ADDR": "127.0.0.1"},
                       headers={"X-Forwarded-For": "192.0.2.10"})
    assert local.status_code == 200


@pytest.mark.parametrize("address", ["127.0.0.1", "127.8.9.10", "::1", "::ffff:127.0.0.1"])
def test_loopback_clients_reach_the_dev_phone(client, address):
    page = client.get("/dev/phone", environ_base={"REMOTE_ADDR": address})
    assert page.status_code == 200 and page.headers["Cache-Control"] == "no-store"
    assert "/dev/phone" in client.get("/console/login", environ_base={"REMOTE_ADDR": address}).get_data(as_text=True)


NIGHT = dt.datetime(2026, 12, 2, 3, 0, tzinfo=PARIS)  # the demo flow sends 07:00-23:00
ENGLISH = {"Accept-Language": "en"}


def queue_round(accord, flow, tmp_path) -> None:
    contacts = tmp_path / "contacts.csv"
    contacts.write_text(f"telephone\n{VOTER}\n", encoding="utf-8")
    origin = Origin(source_type="supporters", broker=flow.source, contract="", operator="camille",
                    file=contacts.name, imported_at="2026-12-02T02:00:00+00:00")
    start_round(accord, flow, contacts, origin)


def test_at_night_the_thread_says_the_window_is_shut_when_it_opens_and_that_the_request_waits(
        client, accord, flow, clock, tmp_path):
    clock.set(NIGHT)
    queue_round(accord, flow, tmp_path)
    thread = client.get("/dev/phone/thread", query_string={"phone": VOTER, "flow": "demo"}, headers=ENGLISH).json
    assert thread["messages"] == []
    assert thread["window"] == ("The sending window is shut (before sending hours): it opens "
                                "Wed, Dec 2, 2026 07:00 CET. A round queued the consent request: it goes when "
                                "the window opens.")


def test_in_the_window_the_thread_carries_no_window_note(client, accord, flow, tmp_path):
    queue_round(accord, flow, tmp_path)
    thread = client.get("/dev/phone/thread", query_string={"phone": VOTER, "flow": "demo"}, headers=ENGLISH).json
    assert thread["window"] == ""


def test_at_night_an_answer_names_the_text_the_window_held_back(client, accord, flow, clock, token):
    ask(accord, flow)
    clock.set(NIGHT)
    answer = client.post("/dev/phone/send", data={"phone": VOTER, "flow": "demo", "body": "oui"},
                         headers={"X-CSRF-Token": token, **ENGLISH})
    assert answer.json["replies"] == [flow.texts.confirmation]
    assert answer.json["held"] == f"Held back while the window is shut: « {flow.texts.content[0]} »"
    clock.set(TUESDAY_MORNING)
    answer = client.post("/dev/phone/send", data={"phone": VOTER, "flow": "demo", "body": "Qui êtes-vous ?"},
                         headers={"X-CSRF-Token": token, **ENGLISH})
    assert answer.json["held"] == ""
