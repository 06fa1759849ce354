"""The proof names the truth: what asked consent, the broker the SMS named, when a text came, and what
was sent and paid for, even after the retention purge."""

from __future__ import annotations

import csv
import dataclasses
import datetime as dt
import io
import json
import re
from pathlib import Path

import pytest
from click.testing import CliRunner, Result
from rq import SimpleWorker

from bot import Accord, create_app, use
from bot.cli import Services, main
from bot.keys import costs_key
from bot.rounds import start_round
from bot.segments import segments
from bot.sending import ask, queue_for
from tests.conftest import PARIS, SMS, Clock
from tests.test_proof import ORIGIN
from tests.twilio_server import TwilioServer, num_segments

VOTER, OTHER = "+33612980001", "+33612980002"
HOW_DID_YOU_GET_MY_NUMBER = "comment avez-vous eu mon numéro ?"


def run(accord: Accord, *args: str) -> Result:
    return CliRunner().invoke(main, list(args), obj=Services(accord), catch_exceptions=False)


def at(day: int, hour: int, minute: int) -> dt.datetime:
    return dt.datetime(2026, 12, day, hour, minute, tzinfo=PARIS)


def export(accord: Accord) -> dict[str, dict]:
    result = run(accord, "consent", "export", "demo")
    assert result.exit_code == 0, result.output
    return {proof["phone"]: proof for proof in map(json.loads, result.stdout.splitlines())}


def cost_rows(accord: Accord) -> list[list[str]]:
    result = run(accord, "report", "costs", "demo", "--unit-price", "0.05")
    assert result.exit_code == 0, result.output
    return [row for row in csv.reader(io.StringIO(result.stdout)) if not row[0].startswith("#")]


# Consent requests are the texts that asked consent, nothing else.


def test_a_help_text_to_a_voter_who_wrote_first_is_no_consent_request(accord, sms: SMS, clock: Clock):
    flow = accord.flows["demo"]
    for body in ("Qui êtes-vous ?", "STOP", "START", HOW_DID_YOU_GET_MY_NUMBER):
        sms.send(VOTER, body)
        clock.advance(minutes=1)
    (request,) = export(accord)[VOTER]["requests"]  # the one START brought back, not the help texts
    assert request["text"] == flow.texts.consent_request and request["asked_at"] == "2026-12-01T09:02:00+00:00"


def test_a_help_text_to_a_voter_asked_by_a_round_is_no_consent_request(accord, sms: SMS, clock: Clock):
    flow = accord.flows["demo"]
    assert ask(accord, flow, VOTER) == "sent"
    clock.advance(minutes=5)
    sms.send(VOTER, HOW_DID_YOU_GET_MY_NUMBER)
    (request,) = export(accord)[VOTER]["requests"]
    assert request["text"] == flow.texts.consent_request and request["message_sid"]


# The broker the ledger names is the one the SMS names.


def contacts(tmp_path: Path) -> Path:
    path = tmp_path / "contacts.csv"
    path.write_text(f"telephone\n{VOTER}\n", encoding="utf-8")
    return path


def test_round_start_refuses_a_broker_the_flows_request_does_not_name(accord, tmp_path: Path):
    flow = accord.flows["demo"]
    result = run(accord, "round", "start", "demo", str(contacts(tmp_path)), "--broker", "AutreCourtier",
                 "--contract", "AC-1", "--operator", "camille")
    assert result.exit_code == 1
    assert "AutreCourtier" in result.output and flow.source in result.output
    assert accord.store.funnel(flow).get("import:queued", 0) == 0
    assert not [f for _, f in accord.store.ledger("demo") if f["event"] == "import"]


def test_round_start_takes_a_broker_the_flows_request_names(accord, tmp_path: Path):
    flow = accord.flows["presidentielle-2027"]  # its request says "la société DataVote (location de fichier)"
    result = run(accord, "round", "start", flow.id, str(contacts(tmp_path)), "--broker", "datavote",
                 "--contract", "DV-1", "--operator", "camille")
    assert result.exit_code == 0, result.output
    (origin,) = [json.loads(f["text"]) for _, f in accord.store.ledger(flow.id) if f["event"] == "import"]
    assert origin["broker"] == "datavote"


# Reconcile logs a text at the time Twilio received it, and sends what is still owed.


@pytest.fixture
def twilio_flow(twilio_accord: Accord):
    return twilio_accord.flows["demo"]


@pytest.fixture
def missed(twilio_accord: Accord, twilio_flow, twilio: TwilioServer, clock: Clock) -> dict[str, str]:
    """Both asked at 09:00; VOTER's question came at 10:05, OTHER's OUI at 10:06, while the app was down."""
    clock.set(at(1, 9, 0))
    assert ask(twilio_accord, twilio_flow, VOTER) == "sent" and ask(twilio_accord, twilio_flow, OTHER) == "sent"
    sids = {VOTER: twilio.add_inbound(VOTER, twilio_flow.sender, HOW_DID_YOU_GET_MY_NUMBER, at(1, 10, 5))["sid"],
            OTHER: twilio.add_inbound(OTHER, twilio_flow.sender, "OUI", at(1, 10, 6))["sid"]}
    clock.set(at(1, 14, 0))
    return sids


def reconcile(accord: Accord) -> Result:
    result = run(accord, "reconcile", "demo", "--since", "2026-12-01T09:30")
    assert result.exit_code == 0, result.output
    return result


def sent_since(twilio: TwilioServer, count: int) -> list[tuple[str, str]]:
    return [(m["to"], m["body"]) for m in twilio.messages[count:]]


def test_a_replayed_text_is_logged_when_twilio_received_it(twilio_accord, missed):
    reconcile(twilio_accord)
    answers = {f["sid"]: float(f["at"]) for _, f in twilio_accord.store.ledger("demo") if f["event"].startswith("in:")}
    assert answers == {missed[VOTER]: at(1, 10, 5).timestamp(), missed[OTHER]: at(1, 10, 6).timestamp()}
    assert export(twilio_accord)[OTHER]["answers"][0]["at"] == "2026-12-01T09:06:00+00:00"  # 10:06 in Paris
    assert twilio_accord.store.verify_ledger("demo") is None


def test_a_missed_question_and_yes_are_answered_once_when_reconciled(twilio_accord, twilio_flow, missed, twilio):
    texts = twilio_flow.texts
    reconcile(twilio_accord)
    assert sent_since(twilio, 2) == [(VOTER, texts.help), (OTHER, texts.confirmation), (OTHER, texts.content[0])]
    sent = {(f["phone"], f["text"], f["sid"]) for _, f in twilio_accord.store.ledger("demo") if f["event"] == "sent"}
    assert {(m["to"], m["body"], m["sid"]) for m in twilio.messages} == sent  # each with the provider's sid
    # The inbound entries record no reply of their own: what went is each "sent" entry.
    assert all(not f["reply"] for _, f in twilio_accord.store.ledger("demo") if f["event"].startswith("in:"))
    reconcile(twilio_accord)
    assert len(twilio.messages) == 5  # nothing twice
    # Content 1 went: the next broadcast does not send it again.
    run(twilio_accord, "content", "send", "demo")
    SimpleWorker([queue_for(twilio_accord)], connection=twilio_accord.store.redis).work(burst=True)
    assert len(twilio.messages) == 5


def test_out_of_hours_only_service_texts_go_and_content_waits(twilio_accord, twilio_flow, missed, twilio, clock):
    clock.set(at(1, 23, 30))  # the demo flow sends 07:00-23:00
    reconcile(twilio_accord)
    assert sent_since(twilio, 2) == [(VOTER, twilio_flow.texts.help), (OTHER, twilio_flow.texts.confirmation)]
    assert twilio_accord.store.state(twilio_flow, OTHER) == "consented"
    clock.set(at(2, 9, 0))
    run(twilio_accord, "content", "send", "demo")
    SimpleWorker([queue_for(twilio_accord)], connection=twilio_accord.store.redis).work(burst=True)
    assert sent_since(twilio, 4) == [(OTHER, twilio_flow.texts.content[0])]


def test_an_answer_twilio_refused_unprocessed_goes_with_the_next_reconcile_and_no_other_twice(
        twilio_accord, twilio_flow, missed, twilio):
    twilio.fail_next(1, status=429, code=20429)  # the help text to VOTER, the first answer sent
    reconcile(twilio_accord)
    assert sent_since(twilio, 2) == [(OTHER, twilio_flow.texts.confirmation), (OTHER, twilio_flow.texts.content[0])]
    reconcile(twilio_accord)
    assert sent_since(twilio, 4) == [(VOTER, twilio_flow.texts.help)]


def test_the_cost_report_counts_what_twilio_sent_and_nothing_more(twilio_accord, missed, twilio, clock):
    clock.set(at(1, 23, 30))  # content waits: it must not be counted
    reconcile(twilio_accord)
    total = cost_rows(twilio_accord)[-1]
    assert total[:3] == ["TOTAL", str(len(twilio.messages)), str(sum(num_segments(m["body"]) for m in twilio.messages))]


def test_a_start_found_late_is_asked_again_and_the_proof_names_that_request(twilio_accord, twilio_flow, missed,
                                                                           twilio, clock):
    sms = SMS(create_app(twilio_accord.config, gateway=twilio_accord.gateway,
                         clock=twilio_accord.store.clock).test_client())
    clock.set(at(1, 9, 10))
    sms.send(OTHER, "STOP", to=twilio_flow.sender)
    twilio.add_inbound(OTHER, twilio_flow.sender, "START", at(1, 10, 7))
    clock.set(at(1, 14, 0))
    reconcile(twilio_accord)
    (again,) = [m for m in twilio.messages[2:] if m["to"] == OTHER]
    assert again["body"] == twilio_flow.texts.consent_request
    first, late = export(twilio_accord)[OTHER]["requests"]
    assert (late["asked_at"], late["sent_at"], late["message_sid"]) == (
        "2026-12-01T09:07:00+00:00", "2026-12-01T13:00:00+00:00", again["sid"])


def test_a_text_the_webhook_answered_is_not_answered_again(twilio_accord, twilio_flow, missed, twilio):
    sms = SMS(create_app(twilio_accord.config, gateway=twilio_accord.gateway,
                         clock=twilio_accord.store.clock).test_client())
    sms.send(VOTER, HOW_DID_YOU_GET_MY_NUMBER, to=twilio_flow.sender, sid=missed[VOTER])  # its TwiML answered it
    reconcile(twilio_accord)
    assert [to for to, _ in sent_since(twilio, 2)] == [OTHER, OTHER]


# Costs stay countable after the purge, until the campaign accounts are filed.


@pytest.fixture
def campaign(accord: Accord, sms: SMS, clock: Clock) -> None:
    """Three asked at 10:00; A says OUI (confirmation and content), B NON, C asks who we are."""
    flow = accord.flows["demo"]
    for phone in (VOTER, OTHER, "+33612980003"):
        assert ask(accord, flow, phone) == "sent"
    clock.advance(minutes=5)
    sms.send(VOTER, "oui")
    sms.send(OTHER, "non")
    sms.send("+33612980003", "qui etes-vous")


def test_the_cost_report_is_the_same_after_the_retention_purge(accord, campaign, clock: Clock):
    texts = accord.flows["demo"].texts
    before = cost_rows(accord)
    parts = 3 * segments(texts.consent_request) + sum(map(segments, (texts.confirmation, texts.content[0],
                                                                     texts.declined, texts.help)))
    assert before[1][:3] == ["2026-12-01", "7", str(parts)]
    clock.advance(days=61)
    purged = run(accord, "purge")
    assert purged.exit_code == 0 and "removed" in purged.output, purged.output
    result = run(accord, "report", "costs", "demo", "--unit-price", "0.05")
    assert cost_rows(accord) == before
    assert "erased since" not in result.stdout


def test_the_cost_report_is_the_same_after_an_erasure(accord, campaign):
    before = cost_rows(accord)
    result = run(accord, "person", "erase", OTHER, "--yes")
    assert result.exit_code == 0, result.output
    assert cost_rows(accord) == before


def test_the_day_counts_hold_no_personal_data(accord, campaign):
    fields = {key.decode(): value.decode() for key, value in accord.store.redis.hgetall(costs_key("demo")).items()}
    assert {name for name in fields if not re.fullmatch(r"2026-12-01\|(request|content|reply)\|\d+", name)} == {"since"}
    assert not any("6129800" in name or "6129800" in value for name, value in fields.items())


def test_messages_logged_before_the_day_counts_began_are_still_counted_from_the_ledger(accord, campaign):
    before = cost_rows(accord)
    accord.store.redis.delete(costs_key("demo"))  # as a version without the counts left them
    assert cost_rows(accord) == before


def test_each_number_is_credited_to_the_import_that_queued_it(accord, tmp_path):
    """Two imports before any worker sends: each number names its own import, not the later one."""
    use(accord)
    flow = accord.flows["demo"]
    first = dataclasses.replace(ORIGIN, file="first.csv", contract="DV-1")
    second = dataclasses.replace(ORIGIN, file="second.csv", contract="DV-2", id="b" * 8)
    for origin, phone in ((first, "+33612980001"), (second, "+33612980002")):
        path = tmp_path / origin.file
        path.write_text(f"telephone\n{phone}\n", encoding="utf-8")
        start_round(accord, flow, path, origin, rate=1000)
    SimpleWorker([queue_for(accord)], connection=accord.store.redis).work(burst=True)

    exported = CliRunner().invoke(main, ["consent", "export", "demo"], obj=Services(accord), catch_exceptions=False)
    records = [json.loads(line) for line in exported.stdout.splitlines()]
    contracts = {record["phone"]: record["origin"]["contract"] for record in records}
    assert contracts == {"+33612980001": "DV-1", "+33612980002": "DV-2"}
    shown = CliRunner().invoke(main, ["person", "show", "+33612980001"], obj=Services(accord)).output
    assert "DV-1" in shown and "DV-2" not in shown
