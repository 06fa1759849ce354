"""Access, erasure and retention, through the command line, against a real Redis and a moving clock."""

from __future__ import annotations

import datetime as dt
import json
from pathlib import Path

import pytest
import redis
from click.testing import CliRunner, Result

from bot import Accord, use
from bot.cli import Services, main
from bot.keys import OUTBOX_KEY
from bot.rounds import Origin, start_round
from bot.sending import queue_for
from tests.conftest import PARIS, SMS, Clock
from tests.test_invariants import InProcessWorker

VOTER = "+33612980001"


def run(accord: Accord, *args: str) -> Result:
    result = CliRunner().invoke(main, list(args), obj=Services(accord), catch_exceptions=False)
    assert result.exit_code == 0, result.output
    return result


@pytest.fixture
def flow(accord: Accord):
    return accord.flows["demo"]


def ask(accord: Accord, flow, phone: str) -> None:
    assert accord.store.claim(flow, phone, window_open=True).dest == "asked"
    accord.store.record_sent(flow, phone, "SM" + phone[-8:] * 4, flow.texts.consent_request)


def keys_mentioning(redis_client: redis.Redis, accord: Accord, phone: str) -> list[bytes]:
    """Every key whose name or content still holds the number (or its person id)."""
    found = []
    for key in redis_client.scan_iter():
        kind = redis_client.type(key)
        if key == OUTBOX_KEY.encode():
            continue
        if kind == b"hash":
            content = b"".join(k + v for k, v in redis_client.hgetall(key).items())
        elif kind == b"string":
            content = redis_client.get(key) or b""
        elif kind == b"stream":
            content = b"".join(b"".join(f.values()) for _, f in redis_client.xrange(key))
        else:
            continue
        if phone.encode() in key + content:
            found.append(key)
    return found


def test_person_show_lists_every_step_with_its_source(accord, flow, sms: SMS):
    ask(accord, flow, VOTER)
    sms.send(VOTER, "Oui !")
    output = run(accord, "person", "show", "06 12 98 00 01").output
    assert f"{VOTER} in demo: consented" in output
    assert f"source: {flow.source}" in output and flow.controller in output
    assert "ask" in output and "sent" in output and "in:YES" in output and "'Oui !'" in output


def test_person_erase_keeps_only_the_hmac_and_a_later_import_is_suppressed(accord, flow, sms: SMS,
                                                                          redis_client, tmp_path: Path):
    ask(accord, flow, VOTER)
    sms.send(VOTER, "oui")
    output = run(accord, "person", "erase", VOTER, "--yes").output
    assert "demo: 3 ledger entries erased" in output
    assert keys_mentioning(redis_client, accord, VOTER) == []
    assert accord.store.is_suppressed(flow, VOTER)
    shown = run(accord, "person", "show", VOTER).output
    assert f"{VOTER} in demo: new (objected)" in shown and "in:YES" not in shown
    entries = accord.store.ledger(flow.id)
    assert [f.get("erased") for _, f in entries[:3]] == ["1", "1", "1"]
    assert entries[-1][1]["event"] == "erasure" and entries[-1][1]["phone"] == ""
    assert accord.store.verify_ledger(flow.id) is None
    path = tmp_path / "again.csv"
    path.write_text(f"phone\n{VOTER}\n")
    report = start_round(accord, flow, path, Origin("supporters", "", "", "test", "again.csv", "-"))
    assert report.counts["suppressed"] == 1 and report.counts["queued"] == 0



def test_a_number_erased_while_its_request_waits_in_the_queue_is_never_asked(accord, flow, tmp_path: Path):
    """Erasure and objection before the round's worker reached the number: the queued job sends nothing."""
    path = tmp_path / "round.csv"
    path.write_text(f"phone\n{VOTER}\n+33612980002\n")
    report = start_round(accord, flow, path, Origin("supporters", "", "", "test", "round.csv", "-"))
    assert report.counts["queued"] == 2
    run(accord, "person", "erase", VOTER, "--yes")
    assert accord.store.is_suppressed(flow, VOTER)
    use(accord)  # the worker's jobs run with this test's services
    InProcessWorker([queue_for(accord)], connection=accord.store.redis).work(burst=True)
    assert [m["to"] for m in accord.store.outbox()] == ["+33612980002"]
    assert accord.store.state(flow, VOTER) == "new"

def test_purge_at_61_days_removes_exactly_what_is_due(accord, flow, sms: SMS, clock: Clock):
    start = clock()
    silent, refused, agreed, objected, recent = (f"+3361298000{n}" for n in range(1, 6))
    for phone in (silent, refused, agreed, objected):
        ask(accord, flow, phone)
    sms.send(refused, "non")
    sms.send(agreed, "oui")
    sms.send(objected, "stop")
    clock.advance(days=40)
    ask(accord, flow, recent)
    clock.now = start + 61 * 86400

    dry = run(accord, "purge", "--dry-run").output
    assert "would remove 2: demo: no answer: 60 days after the request" not in dry  # recent is 21 days old
    assert "would remove 1: demo: no answer: 60 days after the request" in dry
    assert "would remove 1: demo: declined: 60 days after the request" in dry
    assert "would remove 1: demo: opted out: reduced to the suppression HMAC" in dry
    assert accord.store.state(flow, silent) == "expired"  # a dry run changes nothing

    run(accord, "purge")
    assert [accord.store.state(flow, p) for p in (silent, refused, agreed, objected, recent)] == [
        "new", "new", "consented", "new", "expired"]
    assert accord.store.person(silent) == {} and accord.store.person(agreed) != {}
    assert accord.store.is_suppressed(flow, objected)
    # Purged numbers stay asked-once: a new round does not ask them again.
    assert accord.store.admit(flow, [silent, refused]) == "aa"
    assert accord.store.verify_ledger(flow.id) is None
    assert "nothing is due" in run(accord, "purge").output


def test_consented_numbers_go_after_the_flows_end_date(accord, sms: SMS, clock: Clock):
    campaign = accord.flows["presidentielle-2027"]
    accord.store.claim(campaign, VOTER, window_open=True)
    sms.send(VOTER, "oui", to=campaign.sender)
    clock.set(dt.datetime(2027, 4, 25, 23, 0, tzinfo=PARIS))  # the end date itself: kept
    assert "nothing is due" in run(accord, "purge").output
    clock.set(dt.datetime(2027, 4, 26, 9, 0, tzinfo=PARIS))
    assert "removed 1: presidentielle-2027: consented: the flow's end date has passed" in run(accord, "purge").output
    assert accord.store.person(VOTER) == {}


def test_funnel_counts_follow_erasure(accord, flow, sms: SMS):
    ask(accord, flow, VOTER)
    sms.send(VOTER, "oui")
    assert accord.store.funnel(flow)["consented"] == 1
    run(accord, "person", "erase", VOTER, "--yes")
    assert accord.store.funnel(flow)["consented"] == 0


def test_person_show_reports_raw_json_safely(accord, flow, sms: SMS):
    ask(accord, flow, VOTER)
    sms.send(VOTER, '"}{\\ 🗳️ oui ?')
    held = accord.store.person(VOTER)["demo"]
    assert held[-1]["text"] == '"}{\\ 🗳️ oui ?'
    assert json.dumps(held)


def test_purging_one_flow_keeps_what_another_flow_holds_on_the_number(accord, sms, clock, tmp_path):
    demo, presidentielle = accord.flows["demo"], accord.flows["presidentielle-2027"]
    assert accord.store.claim(demo, VOTER, window_open=True).dest == "asked"
    sms.send(VOTER, "non", to=demo.sender)
    clock.advance(days=30)
    sms.send(VOTER, "bonjour", to=presidentielle.sender)  # who wrote first: one entry in that flow
    clock.advance(days=31)
    run(accord, "purge")
    assert accord.store.state(presidentielle, VOTER) == "contacted"
    assert list(accord.store.person(VOTER)) == ["presidentielle-2027"]
    assert accord.store.verify_ledger("presidentielle-2027") is None
