"""The cost report (E.18): every outbound message and its segments, per day in the flow's timezone, with totals."""

from __future__ import annotations

import csv
import dataclasses
import datetime as dt
import io
from pathlib import Path

import pytest
from click.testing import CliRunner, Result

from bot import Accord
from bot.cli import Services, main
from bot.config import Config
from bot.keys import costs_key
from tests.conftest import PARIS, ROOT, SMS, Clock

A, B, C = "+33612980001", "+33612980002", "+33612980003"
GSM_CONFIRMATION = "Merci ! Accord enregistre. STOP pour l'annuler a tout moment. {controller}"
# "ç" is not GSM-7: 95 UCS-2 characters, so 2 parts of 67.
UCS2_CONFIRMATION = "Merci ! Votre accord est bien reçu et enregistre. STOP pour l'annuler a tout moment. {controller}"


@pytest.fixture
def config(config: Config, tmp_path: Path) -> Config:
    """The demo flow, its confirmation rewritten so that it costs UCS-2."""
    flows = tmp_path / "flows"
    flows.mkdir()
    demo = (ROOT / "flows" / "demo.toml").read_text(encoding="utf-8")
    assert GSM_CONFIRMATION in demo
    (flows / "demo.toml").write_text(demo.replace(GSM_CONFIRMATION, UCS2_CONFIRMATION), encoding="utf-8")
    return dataclasses.replace(config, flows_dir=flows)


def run(accord: Accord, *args: str) -> Result:
    return CliRunner().invoke(main, list(args), obj=Services(accord), catch_exceptions=False)


def rows(result: Result) -> list[list[str]]:
    """Return the CSV rows, without the notes (lines starting with #) that follow them."""
    assert result.exit_code == 0, result.output
    return [row for row in csv.reader(io.StringIO(result.stdout)) if not row[0].startswith("#")]


def ask(accord: Accord, phone: str) -> None:
    flow = accord.flows["demo"]
    assert accord.store.claim(flow, phone, window_open=True).dest == "asked"
    accord.store.record_sent(flow, phone, "SM" + phone[-8:] * 4, flow.texts.consent_request)


@pytest.fixture
def two_days(accord: Accord, sms: SMS, clock: Clock) -> None:
    """Three requests and a YES late on Tuesday; a YES and a STOP after midnight in Paris (still Tuesday in UTC)."""
    clock.set(dt.datetime(2026, 12, 1, 22, 0, tzinfo=PARIS))
    for phone in (A, B, C):
        ask(accord, phone)  # 202 GSM-7 characters: 2 segments each
    clock.set(dt.datetime(2026, 12, 1, 22, 30, tzinfo=PARIS))
    sms.send(A, "oui")  # confirmation (UCS-2, 2 segments) + content (73 GSM-7 characters, 1)
    clock.set(dt.datetime(2026, 12, 2, 0, 30, tzinfo=PARIS))  # the window is shut: confirmation only
    sms.send(B, "oui")  # confirmation: 2 segments
    sms.send(C, "stop")  # "Opposition enregistree ...": 50 GSM-7 characters, 1 segment


def test_costs_are_counted_per_day_in_the_flows_timezone_with_totals(accord, two_days):
    assert rows(run(accord, "report", "costs", "demo", "--unit-price", "0.05")) == [
        ["day", "messages", "segments", "unit_price", "price_set_on", "total_eur", "requests", "content", "replies"],
        ["2026-12-01", "5", "9", "0.05", "", "0.45", "3", "1", "1"],
        ["2026-12-02", "2", "3", "0.05", "", "0.15", "0", "0", "2"],
        ["TOTAL", "7", "12", "0.05", "", "0.60", "3", "1", "3"],
    ]


def test_the_report_says_its_counts_were_kept_as_each_message_was_sent(accord, two_days):
    assert "# counted as each message was sent, in day counts that hold no number" in run(
        accord, "report", "costs", "demo").stdout


def test_the_local_outbox_costs_nothing_and_the_report_says_so(accord, two_days):
    result = run(accord, "report", "costs", "demo")
    assert rows(result)[-1] == ["TOTAL", "7", "12", "0", "", "0", "3", "1", "3"]
    assert "# priced at nothing: the local outbox sends nothing out\n" in result.stdout


def test_content_sent_through_the_gateway_counts_too(accord, two_days, clock):
    flow = accord.flows["demo"]
    clock.set(dt.datetime(2026, 12, 2, 10, 0, tzinfo=PARIS))
    assert accord.store.release(flow, B, 1) == "ok"
    accord.store.record_sent(flow, B, "SM" + "c" * 32, flow.texts.content[0], content=True)
    assert rows(run(accord, "report", "costs", "demo"))[2] == ["2026-12-02", "3", "4", "0", "", "0", "0", "1", "2"]


def test_erased_messages_are_still_counted_exactly(accord, sms, clock):
    ask(accord, A)
    ask(accord, B)
    sms.send(A, "oui")  # confirmation (UCS-2, 2 segments) + content (1)
    accord.store.erase(list(accord.flows.values()), A, whole=True, objection=True)
    result = run(accord, "report", "costs", "demo")
    assert rows(result)[1:3] == [["2026-12-01", "4", "7", "0", "", "0", "2", "1", "1"],
                                 ["TOTAL", "4", "7", "0", "", "0", "2", "1", "1"]]
    assert "erased since" not in result.stdout


def test_erased_messages_logged_before_the_day_counts_are_estimated_and_said_so(accord, sms, clock):
    ask(accord, A)
    ask(accord, B)
    sms.send(A, "oui")
    accord.store.redis.delete(costs_key("demo"))  # as a version without the day counts left the flow
    accord.store.erase(list(accord.flows.values()), A, whole=True, objection=True)
    result = run(accord, "report", "costs", "demo")
    assert rows(result)[1:3] == [["2026-12-01", "2", "4", "0", "", "0", "2", "0", "0"],
                                 ["TOTAL", "2", "4", "0", "", "0", "2", "0", "0"]]
    assert "# 2 message(s) logged before the day counts began: read from the ledger" in result.stdout
    assert "# 1 message(s) erased since: segments estimated from the consent request" in result.stdout
    assert "# 1 answer(s) erased since: their TwiML replies are not counted" in result.stdout


def test_a_flow_that_sent_nothing_reports_a_zero_total(accord):
    assert rows(run(accord, "report", "costs", "demo", "--unit-price", "0,05")) == [
        ["day", "messages", "segments", "unit_price", "price_set_on", "total_eur", "requests", "content", "replies"],
        ["TOTAL", "0", "0", "0.05", "", "0", "0", "0", "0"]]


@pytest.mark.parametrize("price", ["abc", "-1", "NaN"])
def test_a_unit_price_that_is_not_a_price_is_refused(accord, price):
    result = run(accord, "report", "costs", "demo", "--unit-price", price)
    assert result.exit_code == 2 and "--unit-price" in result.output
