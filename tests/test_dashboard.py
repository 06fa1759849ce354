"""What the console computes and draws: masked numbers, funnel stages, answers per hour, silence countdown."""

from __future__ import annotations

import datetime as dt
import re

import pytest

from bot.flows import load_flow
from bot.web import charts, dashboard
from tests.conftest import PARIS, ROOT

PRESIDENTIELLE = load_flow(ROOT / "flows" / "presidentielle-2027.toml")


@pytest.mark.parametrize("phone, shown", [
    ("+33612345678", "+33 6 •• •• •• 78"),
    ("+33739980002", "+33 7 •• •• •• 02"),
    ("+4915123456789", "+49 1 •• •• •• •• 89"),
    ("+14155550100", "+1 4 •• •• •• •• 00"),
    ("", "—"),
    ("not a number", "••"),
])
def test_numbers_are_masked_but_for_country_first_and_last_two_digits(phone, shown):
    assert dashboard.mask(phone) == shown


def test_stages_come_from_the_incremental_counters():
    funnel = {"import:imported": 1_000_000, "sent": 990_000, "sent:content": 10, "content:1": 10,
              "status:delivered": 950_000, "answered": 400_000, "consented": 300_000, "declined": 70_000,
              "opted_out": 30_000, "expired": 5,
              "answers:493000": 7, "pending": 12}
    assert dashboard.stages(funnel) == [
        ("imported", 1_000_000), ("asked", 990_000), ("delivered", 950_000), ("answered", 400_000),
        ("consented", 300_000), ("declined", 70_000), ("opted out", 30_000), ("expired", 5)]
    assert dict(dashboard.stages({}))["asked"] == 0


def test_answers_by_hour_ends_with_the_current_hour():
    now = 100 * 3600 + 1800
    series = dashboard.answers_by_hour({"answers:100": 3, "answers:98": 1, "answers:50": 9}, now, hours=4)
    assert series == [(97 * 3600, 0), (98 * 3600, 1), (99 * 3600, 0), (100 * 3600, 3)]


@pytest.mark.parametrize("moment, said", [
    (dt.datetime(2027, 4, 1, 12, 0, tzinfo=PARIS), "Electoral silence starts in 8 d 12 h, on Sat, Apr 10, 2027 00:00"),
    (dt.datetime(2027, 4, 9, 23, 30, tzinfo=PARIS), "starts in 30 min"),
    (dt.datetime(2027, 4, 11, 12, 0, tzinfo=PARIS), "Electoral silence now: no consent request or content until "
                                                     "the polls close, Sun, Apr 11, 2027 20:00 CEST (in 8 h 0 min)"),
    (dt.datetime(2027, 4, 12, 9, 0, tzinfo=PARIS), "for the poll of Apr 25, 2027"),  # the second round's
    (dt.datetime(2027, 4, 25, 20, 0, tzinfo=PARIS), ""),
])
def test_the_silence_countdown_names_the_next_poll(moment, said):
    text = dashboard.silence_text(PRESIDENTIELLE.poll_dates, PARIS, moment.timestamp())
    assert said in text if said else text == ""


def test_the_window_view_says_why_closed_and_until_when():
    sunday = dt.datetime(2026, 12, 6, 12, 0, tzinfo=PARIS).timestamp()
    view = dashboard.window_view(PRESIDENTIELLE, sunday)
    assert (view.open, view.reason, view.opens_at) == (False, "Sunday", dt.datetime(2026, 12, 7, 8, 30, tzinfo=PARIS))
    assert dashboard.window_view(PRESIDENTIELLE, sunday + 86400).open


def test_ledger_rows_mask_numbers_and_say_erased():
    at = str(dt.datetime(2026, 12, 1, 10, 0, tzinfo=PARIS).timestamp())
    entries = [("1-0", {"at": at, "event": "in:YES", "state": "asked>consented", "phone": "+33612345678",
                        "text": "oui"}),
               ("2-0", {"at": at, "kind": "sent", "erased": "1"}),
               ("3-0", {"at": at, "event": "import", "phone": "", "state": "",
                        "text": '{"source_type": "broker", "file": "l.csv", "operator": "camille"}'})]
    rows = dashboard.ledger_rows(entries, PARIS)
    assert [(r.event, r.move, r.phone, r.text) for r in rows] == [
        ("answered YES", "awaiting an answer → gave consent", "+33 6 •• •• •• 78", "oui"),
        ("text sent", "", "(erased)", ""), ("numbers imported", "", "—", "broker list l.csv by camille")]
    assert rows[0].at == "Dec 1 10:00:00"  # outside a request, in English: tests/test_i18n.py has the French


def test_the_funnel_chart_draws_every_stage_with_its_value():
    svg = str(charts.funnel([("imported", 1_000_000), ("consented", 0), ("<b>", 5)]))
    assert svg.startswith("<svg") and svg.endswith("</svg>")
    assert re.findall(r'data-stage="([^"]+)" data-value="(\d+)"', svg) == [
        ("imported", "1000000"), ("consented", "0"), ("&lt;b&gt;", "5")]
    assert "1,000,000" in svg and "<b>" not in svg


def test_the_hourly_chart_draws_a_column_per_hour_with_answers():
    start = int(dt.datetime(2026, 12, 1, 0, 0, tzinfo=PARIS).timestamp())
    svg = str(charts.hourly([(start + h * 3600, h % 3) for h in range(48)], PARIS))
    assert svg.count('class="hour"') == 32 and 'data-hour="2026-12-01 02:00" data-value="2"' in svg
    assert re.findall(r'class="tick"[^>]*text-anchor="end">([^<]+)<', svg) == ["2", "0"]  # the scale's two ends


def test_an_empty_hourly_chart_says_so_and_labels_no_scale():
    start = int(dt.datetime(2026, 12, 1, 0, 0, tzinfo=PARIS).timestamp())
    svg = str(charts.hourly([(start + h * 3600, 0) for h in range(48)], PARIS))
    assert "No answers in the last 48 hours" in svg
    assert re.findall(r'class="tick"[^>]*text-anchor="end">([^<]+)<', svg) == ["0"]
