"""`python -m bot outbox` and `reply` as a newcomer runs them: the voter's thread, and at night why nothing goes."""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterator
from pathlib import Path

import pytest
from click.testing import CliRunner, Result

from bot import Accord
from bot.cli import Services, main
from tests.browser import serve
from tests.conftest import PARIS

VOTER = "+33612980001"
NIGHT = dt.datetime(2026, 12, 2, 3, 0, tzinfo=PARIS)  # the demo flow sends 07:00-23:00
OPENS = "Wednesday 02 December 2026 07:00 CET"


def run(accord: Accord, *args: str) -> Result:
    return CliRunner().invoke(main, list(args), obj=Services(accord), catch_exceptions=False)


@pytest.fixture
def flow(accord):
    return accord.flows["demo"]


@pytest.fixture
def site(app) -> Iterator[str]:
    with serve(app) as url:
        yield url


def start_round(accord: Accord, tmp_path: Path) -> None:
    contacts = tmp_path / "contacts.csv"
    contacts.write_text(f"telephone\n{VOTER}\n", encoding="utf-8")
    result = run(accord, "round", "start", "demo", str(contacts), "--source-type", "supporters")
    assert result.exit_code == 0, result.output


def ask(accord: Accord, flow) -> None:
    """Do what a worker does for one number in the window: claim it, send the request through the outbox."""
    outcome = accord.store.claim(flow, VOTER, window_open=True)
    sid = accord.gateway.send(VOTER, outcome.texts[0], sender=flow.sender)
    accord.store.record_sent(flow, VOTER, sid, outcome.texts[0])


def test_at_night_outbox_says_the_window_is_shut_when_it_opens_and_that_the_request_waits(
        accord, flow, clock, tmp_path):
    clock.set(NIGHT)
    start_round(accord, tmp_path)
    shown = run(accord, "outbox", VOTER).output
    assert f"{VOTER} ↔ {flow.sender} (demo, new)" in shown
    assert f"The sending window is closed now (before sending hours); it opens {OPENS}." in shown
    assert f"held back: {flow.texts.consent_request}" in shown
    everyone = run(accord, "outbox").output
    assert "The outbox has texted nobody yet." in everyone
    assert f"demo: The sending window is closed now (before sending hours); it opens {OPENS}." in everyone


def test_in_the_window_outbox_shows_no_window_note(accord, flow, tmp_path):
    start_round(accord, tmp_path)
    shown = run(accord, "outbox", VOTER).output
    assert "window" not in shown and f"held back: {flow.texts.consent_request}" not in shown


def test_outbox_shows_the_thread_as_the_dev_phone_does_requests_answers_and_the_voters_texts(
        accord, flow, sms):
    ask(accord, flow)
    sms.send(VOTER, "Qui êtes-vous ?")
    sms.send(VOTER, "oui")
    lines = run(accord, "outbox", VOTER).output.splitlines()
    assert lines[0] == f"{VOTER} ↔ {flow.sender} (demo, consented)"
    assert [line.split(None, 3)[2:] for line in lines[1:]] == [
        ["bot", flow.texts.consent_request], ["voter", "Qui êtes-vous ?"], ["bot", flow.texts.help],
        ["voter", "oui"], ["bot", flow.texts.confirmation], ["bot", flow.texts.content[0]]]
    assert lines[1].startswith("  01/12 10:00  bot  ")


def test_at_night_reply_oui_says_the_window_is_shut_and_names_the_content_held_back(
        accord, flow, clock, site):
    ask(accord, flow)
    clock.set(NIGHT)
    shown = run(accord, "reply", "--url", site, VOTER, "oui").output
    assert f"bot → {VOTER}: {flow.texts.confirmation}" in shown
    assert flow.texts.content[0] not in shown.split("held back: ")[0]  # not sent: named as held back
    assert f"The sending window is closed now (before sending hours); it opens {OPENS}." in shown
    assert f"held back: {flow.texts.content[0]}" in shown
    assert "python -m bot content send demo" in shown


def test_reply_judges_the_window_in_the_voters_own_calendar_region(accord, flow, clock, site):
    outcome = accord.store.claim(flow, VOTER, window_open=True, region="G")  # Guadeloupe: 22:00 at Paris's 03:00
    accord.store.record_sent(flow, VOTER, accord.gateway.send(VOTER, outcome.texts[0], sender=flow.sender),
                             outcome.texts[0])
    clock.set(NIGHT)
    shown = run(accord, "reply", "--url", site, VOTER, "oui").output
    assert f"bot → {VOTER}: {flow.texts.content[0]}" in shown
    assert "window" not in shown and "held back" not in shown


def test_in_the_window_reply_oui_brings_the_content_and_no_window_note(accord, flow, site):
    ask(accord, flow)
    shown = run(accord, "reply", "--url", site, VOTER, "oui").output
    assert f"bot → {VOTER}: {flow.texts.content[0]}" in shown
    assert "window" not in shown and "held back" not in shown
