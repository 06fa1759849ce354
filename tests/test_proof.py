"""The proof of consent (A.6): request, sending, answers and origin of each number, exported and logged (C.12)."""

from __future__ import annotations

import csv
import io
import json
from pathlib import Path

import pytest
from click.testing import CliRunner, Result
from rq import SimpleWorker

from bot import Accord, use
from bot.cli import Services, main
from bot.rounds import Origin, start_round
from bot.sending import queue_for
from tests.conftest import SMS, Clock

VOTER = "+33612980001"
SILENT = "+33612980002"
YES_SID = "SM" + "a" * 32
STOP_SID = "SM" + "b" * 32
ORIGIN = Origin(source_type="broker", broker="DataVote", contract="DV-2027-001", operator="camille",
                file="contacts.csv", imported_at="2026-12-01T09:00:00+00:00")


def run(accord: Accord, *args: str) -> Result:
    result = CliRunner().invoke(main, list(args), obj=Services(accord), catch_exceptions=False)
    assert result.exit_code == 0, result.output
    return result


def export(accord: Accord, *args: str) -> list[dict]:
    return [json.loads(line) for line in run(accord, "consent", "export", "demo", *args).stdout.splitlines()]


def start(accord: Accord, tmp_path: Path, phones: list[str], origin: Origin = ORIGIN) -> None:
    """Import `phones` into a demo round and let a worker send their consent requests."""
    path = tmp_path / origin.file
    path.write_text("telephone\n" + "".join(f"{phone}\n" for phone in phones), encoding="utf-8")
    use(accord)
    start_round(accord, accord.flows["demo"], path, origin, rate=1000)
    SimpleWorker([queue_for(accord)], connection=accord.store.redis).work(burst=True)


@pytest.fixture
def conversation(accord: Accord, tmp_path: Path, sms: SMS, clock: Clock) -> None:
    """VOTER is asked at 09:00 UTC, says OUI at 09:05, then STOP at 09:30; SILENT never answers."""
    start(accord, tmp_path, [VOTER, SILENT])
    clock.advance(minutes=5)
    sms.send(VOTER, "Oui !", sid=YES_SID)
    clock.advance(minutes=25)
    sms.send(VOTER, "stop", sid=STOP_SID)


def test_the_proof_shows_the_whole_chain_of_a_yes_then_stop(accord, conversation):
    flow = accord.flows["demo"]
    (proof,) = [p for p in export(accord) if p["phone"] == VOTER]
    assert proof["flow"] == "demo" and proof["outcome"] == "opted_out"
    (request,) = proof["requests"]
    (sent,) = accord.store.outbox(VOTER)
    assert request["text"] == flow.texts.consent_request == sent["body"]
    assert request["flow_hash"] == flow.content_hash
    assert request["sent_at"] == "2026-12-01T09:00:00+00:00" and request["message_sid"] == sent["sid"]
    assert [(a["at"], a["sid"], a["event"], a["text"], a["state"]) for a in proof["answers"]] == [
        ("2026-12-01T09:05:00+00:00", YES_SID, "YES", "Oui !", "asked>consented"),
        ("2026-12-01T09:30:00+00:00", STOP_SID, "STOP", "stop", "consented>opted_out"),
    ]
    assert proof["operator"] == "camille"
    assert proof["origin"]["contract"] == "DV-2027-001" and proof["origin"]["broker"] == "DataVote"


def test_a_number_that_never_answered_has_its_request_and_no_answer(accord, conversation):
    (proof,) = [p for p in export(accord) if p["phone"] == SILENT]
    assert proof["outcome"] == "asked" and proof["answers"] == []
    assert proof["requests"][0]["message_sid"] == accord.store.outbox(SILENT)[0]["sid"]


def test_the_csv_proof_flattens_the_same_chain_into_one_row_per_number(accord, conversation, tmp_path):
    path = tmp_path / "proof.csv"
    run(accord, "consent", "export", "demo", "--format", "csv", "--output", str(path))
    rows = {row["phone"]: row for row in csv.DictReader(io.StringIO(path.read_text(encoding="utf-8")))}
    assert set(rows) == {VOTER, SILENT}
    row = rows[VOTER]
    assert row["outcome"] == "opted_out" and row["operator"] == "camille"
    assert row["request_text"] == accord.flows["demo"].texts.consent_request
    assert row["flow_hash"] == accord.flows["demo"].content_hash
    assert row["sent_at"] == "2026-12-01T09:00:00+00:00"
    assert row["request_sid"] == accord.store.outbox(VOTER)[0]["sid"]
    assert row["answers"] == (f"2026-12-01T09:05:00+00:00|{YES_SID}|YES|Oui ! ; "
                              f"2026-12-01T09:30:00+00:00|{STOP_SID}|STOP|stop")
    assert json.loads(row["origin"])["contract"] == "DV-2027-001"


def test_phone_limits_the_export_to_that_number(accord, conversation):
    assert [p["phone"] for p in export(accord, "--phone", "06 12 98 00 01")] == [VOTER]


def test_every_export_is_logged_without_the_number_and_the_chain_still_verifies(accord, conversation, tmp_path):
    export(accord, "--phone", VOTER)
    run(accord, "consent", "export", "demo", "--format", "csv", "--output", str(tmp_path / "all.csv"))
    logged = [fields for _, fields in accord.store.ledger("demo") if fields.get("event") == "export"]
    assert [json.loads(f["text"]) for f in logged] == [
        {"operator": json.loads(logged[0]["text"])["operator"], "scope": "one number", "format": "jsonl",
         "count": 1, "output": "stdout"},
        {"operator": json.loads(logged[0]["text"])["operator"], "scope": "all", "format": "csv", "count": 2,
         "output": "all.csv"},
    ]
    assert all(f["phone"] == "" and VOTER[1:] not in f["text"] and "612980001" not in f["text"] for f in logged)
    assert accord.store.verify_ledger("demo") is None


def test_an_erased_number_no_longer_appears(accord, conversation):
    accord.store.erase(list(accord.flows.values()), VOTER, whole=True, objection=True)
    assert [p["phone"] for p in export(accord)] == [SILENT]
    assert export(accord, "--phone", VOTER) == []
    assert accord.store.verify_ledger("demo") is None


def test_each_number_names_the_import_of_the_round_that_asked_it(accord, tmp_path, clock):
    start(accord, tmp_path, [VOTER])
    clock.advance(hours=1)
    later = Origin(source_type="supporters", broker="Liste Demo", contract="", operator="dominique",
                   file="supporters.csv", imported_at="2026-12-01T10:00:00+00:00")
    start(accord, tmp_path, [SILENT], later)
    operators = {p["phone"]: p["operator"] for p in export(accord)}
    assert operators == {VOTER: "camille", SILENT: "dominique"}
