"""Consent rounds from the command line, sent with the real Twilio client to a local Twilio-shaped server."""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterator
from pathlib import Path

import pytest
from click.testing import CliRunner, Result

from bot import Accord, create_app
from bot.cli import Services, main
from bot.contacts import Row
from bot.gateway import TwilioGateway
from bot.rounds import start_round
from tests.conftest import PARIS, SMS, Clock, answers
from tests.twilio_server import TwilioServer

CONTACTS = """telephone;prenom;commune
06 39 98 00 01;Camille;Lyon
+33 7 39 98 00 02;Dominique;Lille
0033639980003;Sacha;Metz
6.39.98.00.04;Alix;Paris
06 39 98 00 01;Camille;Lyon
01 45 67 89 10;Fixe;Paris
n/a;Personne;Nulle part
"""
ASKABLE = ["+33639980001", "+33639980003", "+33639980004", "+33739980002"]


@pytest.fixture(scope="module")
def twilio() -> Iterator[TwilioServer]:
    with TwilioServer() as server:
        yield server


@pytest.fixture
def accord(config, clock: Clock, redis_client, twilio: TwilioServer) -> Accord:
    twilio.reset()
    gateway = TwilioGateway(twilio.account_sid, twilio.auth_token, api_url=twilio.base_url, timeout=2)
    return create_app(config, gateway=gateway, clock=clock).extensions["accord"]


@pytest.fixture
def contacts(tmp_path: Path) -> Path:
    path = tmp_path / "contacts.csv"
    path.write_text(CONTACTS, encoding="utf-8")
    return path


def run(accord: Accord, *args: str) -> Result:
    return CliRunner().invoke(main, list(args), obj=Services(accord), catch_exceptions=False)


def test_round_asks_every_mobile_once_through_twilio(accord, contacts, twilio, clock):
    clock.set(dt.datetime(2026, 12, 1, 15, 0, tzinfo=PARIS))
    result = run(accord, "round", "start", "demo", str(contacts))
    assert result.exit_code == 0, result.output
    flow = accord.flows["demo"]
    assert sorted(m["to"] for m in twilio.messages) == ASKABLE
    assert {m["body"] for m in twilio.messages} == {flow.texts.consent_request}
    assert {m["from"] for m in twilio.messages} == {flow.sender}
    # 15:00: the provider may hold each message until the window closes at 23:00, no later.
    assert {m["params"]["ValidityPeriod"] for m in twilio.messages} == {str(8 * 3600)}
    assert all(accord.store.state(flow, phone) == "asked" for phone in ASKABLE)
    assert "asked: 4" in result.output and "duplicate: 1" in result.output
    assert "line 7: '01 45 67 89 10': not a mobile" in result.output
    assert "line 8: 'n/a'" in result.output
    sent = [f for _, f in accord.store.ledger(flow.id) if f["event"] == "sent"]
    assert sorted(f["sid"] for f in sent) == sorted(m["sid"] for m in twilio.messages)


def test_rerunning_a_round_sends_nothing_new(accord, contacts, twilio):
    run(accord, "round", "start", "demo", str(contacts))
    twilio.reset()
    result = run(accord, "round", "start", "demo", str(contacts))
    assert twilio.messages == []
    assert "already asked: 4" in result.output


def test_dry_run_stores_and_sends_nothing(accord, contacts, twilio, redis_client):
    result = run(accord, "round", "start", "demo", str(contacts), "--dry-run")
    assert "would ask: 4" in result.output
    assert twilio.messages == [] and list(redis_client.scan_iter()) == []


@pytest.mark.parametrize("flow_id, moment, reason", [
    ("presidentielle-2027", dt.datetime(2026, 12, 1, 20, 1, tzinfo=PARIS), "after sending hours"),
    ("presidentielle-2027", dt.datetime(2026, 12, 6, 12, 0, tzinfo=PARIS), "Sunday"),
    ("presidentielle-2027", dt.datetime(2027, 7, 14, 12, 0, tzinfo=PARIS), "public holiday"),
    ("presidentielle-2027", dt.datetime(2027, 4, 10, 12, 0, tzinfo=PARIS), "electoral silence"),
    ("demo", dt.datetime(2026, 12, 1, 23, 1, tzinfo=PARIS), "after sending hours"),
    ("demo", dt.datetime(2030, 6, 8, 12, 0, tzinfo=PARIS), "electoral silence"),
])
def test_no_send_outside_the_window(accord, contacts, twilio, clock, flow_id, moment, reason):
    clock.set(moment)
    result = run(accord, "round", "start", flow_id, str(contacts))
    assert twilio.messages == []
    assert reason in result.output and "Waiting numbers were not sent" in result.output
    assert "waiting for the window: 4" in result.output
    assert accord.store.state(accord.flows[flow_id], ASKABLE[0]) == "new"


def test_provider_unsubscribed_makes_the_number_opted_out(accord, contacts, twilio):
    twilio.fail_to("+33739980002", code=21610)
    twilio.fail_to("+33639980003", code=21614)
    result = run(accord, "round", "start", "demo", str(contacts))
    flow = accord.flows["demo"]
    assert "opted out at the provider: 1" in result.output and "undeliverable: 1" in result.output
    assert accord.store.state(flow, "+33739980002") == "opted_out"
    assert accord.store.is_suppressed(flow, "+33739980002")
    assert accord.store.claim(flow, "+33739980002", window_open=True).refused == "suppressed"


def test_throttled_sends_are_retried_with_backoff(accord, twilio):
    twilio.fail_next(2, status=429, code=20429)
    waits: list[float] = []
    report = start_round(accord, accord.flows["demo"], [Row(2, "0639980001", "")], sleep=waits.append)
    assert report.counts["asked"] == 1
    assert waits == [0.5, 1.0]
    assert [m["to"] for m in twilio.messages] == ["+33639980001"]


def test_a_send_that_keeps_failing_is_reported_not_retried_forever(accord, twilio):
    twilio.fail_next(10, status=500, code=20500)
    report = start_round(accord, accord.flows["demo"], [Row(2, "0639980001", "")], sleep=lambda _: None)
    assert report.counts["claimed, outcome unknown"] == 1
    assert twilio.messages == []
    # At most once: the claim stays, so the next round does not ask again blindly.
    assert accord.store.state(accord.flows["demo"], "+33639980001") == "asked"


def test_full_conversation_after_a_round(accord, contacts, twilio):
    run(accord, "round", "start", "demo", str(contacts))
    app_client = create_app(accord.config, gateway=accord.gateway, clock=accord.store.clock).test_client()
    flow = accord.flows["demo"]
    assert answers(SMS(app_client).send("+33639980001", "OUI")) == [flow.texts.confirmation, flow.texts.content[0]]


def test_contacts_without_a_phone_column_are_refused_by_name(accord, tmp_path):
    path = tmp_path / "bad.csv"
    path.write_text("nom;ville\nDupont;Lyon\n")
    result = CliRunner().invoke(main, ["round", "start", "demo", str(path)], obj=Services(accord))
    assert result.exit_code == 1
    assert "no phone column" in result.output and str(path) in result.output


def test_unknown_flow_is_named(accord, contacts):
    result = CliRunner().invoke(main, ["round", "start", "nope", str(contacts)], obj=Services(accord))
    assert result.exit_code == 2 and "no flow 'nope'" in result.output


def test_a_request_the_provider_never_processed_gives_the_number_back(accord, twilio):
    twilio.fail_to("+33639980001", status=400, code=21611)  # sender queue full
    report = start_round(accord, accord.flows["demo"], [Row(2, "0639980001", "")], sleep=lambda _: None)
    assert report.counts["not sent, provider busy"] == 1
    assert accord.store.state(accord.flows["demo"], "+33639980001") == "new"
    twilio.reset()
    report = start_round(accord, accord.flows["demo"], [Row(2, "0639980001", "")])
    assert report.counts["asked"] == 1 and len(twilio.messages) == 1


class SlowGateway:
    """A gateway whose every send takes a minute of the injected clock."""

    def __init__(self, gateway, clock: Clock) -> None:
        self.gateway, self.clock = gateway, clock

    def send(self, *args, **kwargs) -> str:
        self.clock.advance(minutes=1)
        return self.gateway.send(*args, **kwargs)


def test_a_round_stops_sending_when_the_window_closes_under_it(accord, twilio, clock):
    clock.set(dt.datetime(2026, 12, 1, 22, 56, tzinfo=PARIS))  # the demo window closes at 23:00
    accord.gateway = SlowGateway(accord.gateway, clock)
    rows = [Row(n, f"06399800{n:02d}", "") for n in range(10)]
    report = start_round(accord, accord.flows["demo"], rows)
    assert report.counts["asked"] == 4  # 22:56 to 22:59; at 23:00 the window is shut
    assert report.counts["waiting for the window"] == 6
    assert all(int(m["params"]["ValidityPeriod"]) >= 60 for m in twilio.messages)


def test_regional_holidays_follow_the_postcode(accord, twilio, clock):
    clock.set(dt.datetime(2027, 3, 26, 10, 0, tzinfo=PARIS))  # Good Friday: a holiday in Alsace-Moselle
    rows = [Row(2, "0639980001", "67000"), Row(3, "0639980002", "57000"), Row(4, "0639980003", "75001")]
    report = start_round(accord, accord.flows["presidentielle-2027"], rows)
    assert [m["to"] for m in twilio.messages] == ["+33639980003"]
    assert report.counts["waiting for the window"] == 2


def test_numbers_outside_metropolitan_france_are_rejected_with_the_reason(accord, twilio):
    report = start_round(accord, accord.flows["demo"], [Row(2, "+689 87 12 34 56", "")])
    assert twilio.messages == []
    assert "its local time may differ" in report.rejects[0][2]


def test_dry_run_counts_what_a_round_would_really_do(accord, twilio):
    flow = accord.flows["demo"]
    accord.store.claim(flow, "+33639980001", window_open=True)
    accord.store.step([flow], "+33639980002", "stop")
    rows = [Row(2, "0639980001", ""), Row(3, "0639980002", ""), Row(4, "0639980003", "")]
    report = start_round(accord, flow, rows, dry_run=True)
    assert report.counts == {"read": 3, "already asked": 1, "suppressed": 1, "would ask": 1}


def test_rejected_lines_are_written_next_to_the_file(accord, contacts):
    run(accord, "round", "start", "demo", str(contacts))
    rejects = contacts.with_name("contacts.csv.rejects.csv").read_text(encoding="utf-8").splitlines()
    assert rejects[0] == "line,value,reason"
    assert rejects[1].startswith("7,01 45 67 89 10,not a mobile")
    assert rejects[2].startswith("8,n/a,")
