"""An open consent question: when it expires, and who may be asked it again.

Found by tests/test_invariants.py; each test states the README's promise it checks.
"""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import pytest

from bot import use
from bot.rounds import Origin, start_round
from bot.sending import queue_for
from tests.conftest import PARIS, SMS, Clock, answers
from tests.test_invariants import InProcessWorker

VOTER = "+33612980001"


@pytest.fixture
def flow(accord):
    return accord.flows["demo"]


@pytest.fixture
def asked(accord, flow):
    accord.store.claim(flow, VOTER, window_open=True)  # Tuesday 10:00


def round_of(accord, flow, tmp_path: Path, *phones: str):
    path = tmp_path / "contacts.csv"
    path.write_text("telephone\n" + "".join(f"0{phone[3:]}\n" for phone in phones), encoding="utf-8")
    origin = Origin("supporters", "", "", "tests", str(path), "2026-12-02T09:00:00+00:00")
    report = start_round(accord, flow, path, origin, rate=1000)
    use(accord)  # the worker's jobs run with this test's services
    InProcessWorker([queue_for(accord)], connection=accord.store.redis).work(burst=True)
    return report


@pytest.mark.parametrize("question", ["Qui êtes-vous ?", "START"])
def test_a_question_back_does_not_restart_the_expiry_of_the_consent_request(sms: SMS, accord, flow, clock: Clock,
                                                                               asked, question):
    """README: asked, then no answer for `expiry_days`: expired. The clock runs from the request."""
    clock.advance(days=6)
    sms.send(VOTER, question)  # HELP is answered, START changes nothing: neither answers the question
    clock.advance(days=1)
    assert accord.store.state(flow, VOTER) == "expired"
    clock.advance(hours=1)  # the funnel counts lazy expiry by the hour asked: at most an hour late
    assert accord.store.funnel(flow)["expired"] == 1


def test_the_funnel_never_counts_a_consent_as_expired(sms: SMS, accord, flow, clock: Clock, asked):
    """A voter who asked who we are, then said YES, is consented: not pending, not expired."""
    clock.advance(hours=2)
    sms.send(VOTER, "aide")
    sms.send(VOTER, "oui")
    for _ in range(4 * 24 * 3):  # the next 12 days, every 4 hours
        clock.advance(hours=4)
        funnel = accord.store.funnel(flow)
        assert (funnel["consented"], funnel["pending"], funnel["expired"]) == (1, 0, 0), funnel


def test_a_start_sent_at_night_is_asked_by_the_next_round(sms: SMS, accord, flow, clock: Clock, asked, tmp_path):
    """README: 'A START then leaves the number for the next round rather than asking it at night.'"""
    sms.send(VOTER, "STOP")
    clock.set(dt.datetime(2026, 12, 1, 23, 30, tzinfo=PARIS))
    assert answers(sms.send(VOTER, "START")) == []  # nothing at night
    assert not accord.store.is_suppressed(flow, VOTER)
    clock.set(dt.datetime(2026, 12, 2, 10, 0, tzinfo=PARIS))
    report = round_of(accord, flow, tmp_path, VOTER)
    assert report.counts["queued"] == 1, dict(report.counts)
    assert [m["body"] for m in accord.store.outbox(VOTER)] == [flow.texts.consent_request]
    assert accord.store.state(flow, VOTER) == "asked"


def test_a_late_answer_counts_once_and_the_funnel_follows_every_move(sms: SMS, accord, flow, clock: Clock, asked):
    """An answer after expiry still answers the question; an erased number leaves the counts."""
    other = "+33612980002"
    accord.store.claim(flow, other, window_open=True)
    clock.advance(days=flow.expiry_days, hours=2)
    assert accord.store.funnel(flow)["expired"] == 2  # both lazily, by the hour they were asked
    sms.send(VOTER, "non")  # expired, then declined, in one step
    funnel = accord.store.funnel(flow)
    assert (funnel["declined"], funnel["expired"], funnel["answered"], funnel["pending"]) == (1, 1, 1, 0), funnel
    sms.send(VOTER, "oui")  # changing one's mind is not a second answer to the question
    accord.store.erase([flow], other, whole=True, objection=False)
    funnel = accord.store.funnel(flow)
    assert (funnel["consented"], funnel["declined"], funnel["expired"], funnel["answered"]) == (1, 0, 0, 1), funnel
