"""Sending windows: hours, Sundays, holidays, Alsace-Moselle, overseas voters, electoral silence, DST."""

from __future__ import annotations

import datetime as dt
from zoneinfo import ZoneInfo

import holidays
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from bot.windows import (
    REGIONS,
    SendingHours,
    Window,
    closes_at,
    next_open,
    read_postcode,
    region_of,
    sending_window,
    silence_span,
)

PARIS = ZoneInfo("Europe/Paris")
UTC = dt.UTC
POLL = dt.date(2026, 3, 15)  # a Sunday, first round of the 2026 municipal elections
MARTINIQUE = ZoneInfo("America/Martinique")
REUNION = ZoneInfo("Indian/Reunion")
GUADELOUPE, MIQUELON = ZoneInfo("America/Guadeloupe"), ZoneInfo("America/Miquelon")
ALL_WEEK = SendingHours(weekdays=frozenset(range(7)))
BEFORE, AFTER, SILENCE = "before sending hours", "after sending hours", "electoral silence"


def paris(y: int, mo: int, d: int, h: int = 0, mi: int = 0) -> dt.datetime:
    """Build a Paris wall-clock instant."""
    return dt.datetime(y, mo, d, h, mi, tzinfo=PARIS)


def at(tz: ZoneInfo, y: int, mo: int, d: int, h: int = 0, mi: int = 0) -> dt.datetime:
    """Build a wall-clock instant in `tz`."""
    return dt.datetime(y, mo, d, h, mi, tzinfo=tz)


def utc(y: int, mo: int, d: int, h: int = 0, mi: int = 0) -> dt.datetime:
    """Build a UTC instant."""
    return dt.datetime(y, mo, d, h, mi, tzinfo=UTC)


# (now, postcode, poll_date, open, reason, opens_at)
CASES = {
    "tuesday_morning_open": (paris(2025, 6, 3, 10), None, None, True, "", paris(2025, 6, 3, 10)),
    "one_minute_before_start": (paris(2025, 6, 3, 8, 29), None, None, False, BEFORE, paris(2025, 6, 3, 8, 30)),
    "start_is_open": (paris(2025, 6, 3, 8, 30), None, None, True, "", paris(2025, 6, 3, 8, 30)),
    "end_is_closed": (paris(2025, 6, 3, 20), None, None, False, AFTER, paris(2025, 6, 4, 8, 30)),
    "after_end": (paris(2025, 6, 3, 20, 1), None, None, False, AFTER, paris(2025, 6, 4, 8, 30)),
    "saturday_1959_open": (paris(2025, 6, 7, 19, 59), None, None, True, "", paris(2025, 6, 7, 19, 59)),
    "sunday_closed": (paris(2025, 6, 1, 11), None, None, False, "Sunday", paris(2025, 6, 2, 8, 30)),
    "saturday_evening_waits_for_monday": (paris(2025, 6, 14, 21), None, None, False, AFTER, paris(2025, 6, 16, 8, 30)),
    "fete_nationale": (paris(2025, 7, 14, 10), None, None, False, "public holiday: Fête nationale", paris(2025, 7, 15, 8, 30)),
    "fete_nationale_on_tuesday": (paris(2026, 7, 14, 10), "75001", None, False, "public holiday: Fête nationale", paris(2026, 7, 15, 8, 30)),
    "first_of_may": (paris(2025, 5, 1, 10), None, None, False, "public holiday: Fête du Travail", paris(2025, 5, 2, 8, 30)),
    "christmas": (paris(2025, 12, 25, 10), None, None, False, "public holiday: Noël", paris(2025, 12, 26, 8, 30)),
    "saturday_before_easter_monday": (paris(2025, 4, 19, 20, 30), None, None, False, AFTER, paris(2025, 4, 22, 8, 30)),
    "saturday_before_whit_monday": (paris(2025, 6, 7, 20), None, None, False, AFTER, paris(2025, 6, 10, 8, 30)),
    "good_friday_moselle": (paris(2025, 4, 18, 10), "57000", None, False, "public holiday: Vendredi saint", paris(2025, 4, 19, 8, 30)),
    "good_friday_bas_rhin": (paris(2025, 4, 18, 10), "67000", None, False, "public holiday: Vendredi saint", paris(2025, 4, 19, 8, 30)),
    "good_friday_haut_rhin": (paris(2025, 4, 18, 10), "68100", None, False, "public holiday: Vendredi saint", paris(2025, 4, 19, 8, 30)),
    "good_friday_paris_open": (paris(2025, 4, 18, 10), "75001", None, True, "", paris(2025, 4, 18, 10)),
    "good_friday_no_postcode_open": (paris(2025, 4, 18, 10), None, None, True, "", paris(2025, 4, 18, 10)),
    "saint_etienne_strasbourg": (paris(2025, 12, 26, 10), "67000", None, False, "public holiday: Saint-Étienne", paris(2025, 12, 27, 8, 30)),
    "saint_etienne_metz_spaced": (paris(2025, 12, 26, 10), "57 000", None, False, "public holiday: Saint-Étienne", paris(2025, 12, 27, 8, 30)),
    "saint_etienne_paris_open": (paris(2025, 12, 26, 10), "75001", None, True, "", paris(2025, 12, 26, 10)),
    "christmas_eve_strasbourg_skips_two_days": (paris(2025, 12, 24, 20, 30), "67000", None, False, AFTER, paris(2025, 12, 27, 8, 30)),
    "day_before_eve_open": (paris(2026, 3, 13, 19, 59), None, POLL, True, "", paris(2026, 3, 13, 19, 59)),
    "eve_midnight_silence": (paris(2026, 3, 14, 0), None, POLL, False, SILENCE, paris(2026, 3, 16, 8, 30)),
    "eve_morning_silence": (paris(2026, 3, 14, 10), None, POLL, False, SILENCE, paris(2026, 3, 16, 8, 30)),
    "poll_day_1959_silence": (paris(2026, 3, 15, 19, 59), None, POLL, False, SILENCE, paris(2026, 3, 16, 8, 30)),
    "poll_day_2000_closed_for_sunday": (paris(2026, 3, 15, 20), None, POLL, False, "Sunday", paris(2026, 3, 16, 8, 30)),
    "after_poll_normal_rules": (paris(2026, 3, 16, 10), None, POLL, True, "", paris(2026, 3, 16, 10)),
    "utc_summer_0745_is_0945_paris": (utc(2025, 6, 3, 7, 45), None, None, True, "", paris(2025, 6, 3, 9, 45)),
    "utc_summer_0615_is_0815_paris": (utc(2025, 6, 3, 6, 15), None, None, False, BEFORE, utc(2025, 6, 3, 6, 30)),
    "utc_winter_0715_is_0815_paris": (utc(2025, 1, 7, 7, 15), None, None, False, BEFORE, utc(2025, 1, 7, 7, 30)),
    "utc_evening_is_next_day_in_paris": (utc(2025, 6, 3, 22, 30), None, None, False, BEFORE, paris(2025, 6, 4, 8, 30)),
    "spring_forward_weekend": (paris(2025, 3, 29, 21), None, None, False, AFTER, utc(2025, 3, 31, 6, 30)),
    "fall_back_weekend": (paris(2025, 10, 25, 20, 30), None, None, False, AFTER, utc(2025, 10, 27, 7, 30)),
    "martinique_abolition_day": (at(MARTINIQUE, 2025, 5, 22, 10), "97200", None, False, "public holiday: Abolition de l'esclavage", at(MARTINIQUE, 2025, 5, 23, 8, 30)),
    "reunion_abolition_day": (at(REUNION, 2024, 12, 20, 10), "97400", None, False, "public holiday: Abolition de l'esclavage", at(REUNION, 2024, 12, 21, 8, 30)),
}


@pytest.mark.parametrize(
    ("now", "postcode", "poll_date", "is_open", "reason", "opens_at"), CASES.values(), ids=CASES.keys()
)
def test_window_follows_hours_days_holidays_and_silence(
    now, postcode, poll_date, is_open, reason, opens_at
) -> None:
    tz = now.tzinfo if isinstance(now.tzinfo, ZoneInfo) else PARIS
    window = sending_window(now, tz=tz, poll_date=poll_date, region=region_of(postcode))
    assert window == Window(is_open, reason, opens_at)
    assert window.opens_at.tzinfo is tz
    assert next_open(now, tz=tz, poll_date=poll_date, region=region_of(postcode)) == opens_at


def test_opening_times_keep_the_local_offset_across_dst() -> None:
    spring = sending_window(paris(2025, 3, 29, 21), tz=PARIS, poll_date=None).opens_at
    autumn = sending_window(paris(2025, 10, 25, 21), tz=PARIS, poll_date=None).opens_at
    assert (spring.time(), spring.utcoffset()) == (dt.time(8, 30), dt.timedelta(hours=2))
    assert (autumn.time(), autumn.utcoffset()) == (dt.time(8, 30), dt.timedelta(hours=1))


@pytest.mark.parametrize(
    ("now", "start", "expected_utc"),
    [
        # 02:30 does not exist on 30 March 2025: the window opens at the first real instant after.
        (paris(2025, 3, 30, 1), dt.time(2, 30), utc(2025, 3, 30, 1, 30)),
        # 02:30 happens twice on 26 October 2025: the first one (summer time) opens the window.
        (paris(2025, 10, 26, 1), dt.time(2, 30), utc(2025, 10, 26, 0, 30)),
        (paris(2025, 3, 30, 1), dt.time(8, 30), utc(2025, 3, 30, 6, 30)),
        (paris(2025, 10, 26, 1), dt.time(8, 30), utc(2025, 10, 26, 7, 30)),
    ],
)
def test_openings_on_dst_changeover_days_are_real_instants(now, start, expected_utc) -> None:
    hours = SendingHours(start=start, weekdays=ALL_WEEK.weekdays)
    opens_at = next_open(now, tz=PARIS, poll_date=None, hours=hours)
    # Compare in UTC: == across zones is always False for a time in the DST fold (PEP 495).
    assert opens_at.astimezone(UTC) == expected_utc
    assert sending_window(opens_at, tz=PARIS, poll_date=None, hours=hours).open


def test_sending_resumes_when_polls_close_if_hours_allow() -> None:
    thursday_poll = dt.date(2026, 3, 19)
    hours = SendingHours.parse("08:00-22:00")
    window = sending_window(paris(2026, 3, 19, 9), tz=PARIS, poll_date=thursday_poll, hours=hours)
    assert window == Window(False, SILENCE, paris(2026, 3, 19, 20))


def test_silence_runs_from_eve_midnight_until_polls_close() -> None:
    assert silence_span(POLL, PARIS) == (paris(2026, 3, 14), paris(2026, 3, 15, 20))
    assert silence_span(POLL, PARIS, dt.time(18)) == (paris(2026, 3, 14), paris(2026, 3, 15, 18))


@pytest.mark.parametrize("call", [sending_window, next_open])
def test_naive_clock_is_refused(call) -> None:
    with pytest.raises(ValueError, match="timezone-aware"):
        call(dt.datetime(2025, 6, 3, 10), tz=PARIS, poll_date=None)


def test_no_allowed_day_means_no_opening() -> None:
    hours = SendingHours(weekdays=frozenset())
    window = sending_window(paris(2025, 6, 3, 10), tz=PARIS, poll_date=None, hours=hours)
    assert window == Window(False, "Tuesday", None)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("08:30-20:00", SendingHours()),
        ("8:00-22:00", SendingHours(dt.time(8), dt.time(22))),
        (" 09:15 - 18:45 ", SendingHours(dt.time(9, 15), dt.time(18, 45))),
        ("00:00-23:59", SendingHours(dt.time(0), dt.time(23, 59))),
    ],
)
def test_sending_hours_parse(text, expected) -> None:
    assert SendingHours.parse(text) == expected


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("", "expected HH:MM-HH:MM"),
        ("8h30-20h", "expected HH:MM-HH:MM"),
        ("08:30", "expected HH:MM-HH:MM"),
        ("08:30-20:00-21:00", "expected HH:MM-HH:MM"),
        ("25:00-20:00", "hours must be 00-23"),
        ("08:00-24:00", "hours must be 00-23"),
        ("08:60-20:00", "minutes 00-59"),
        ("20:00-08:30", "start must be before end"),
        ("10:00-10:00", "start must be before end"),
    ],
)
def test_sending_hours_parse_rejects_bad_text(text, message) -> None:
    with pytest.raises(ValueError, match=f"sending hours '{text}': .*{message}"):
        SendingHours.parse(text)


def test_sending_hours_rejects_inverted_window() -> None:
    with pytest.raises(ValueError, match="start must be before end"):
        SendingHours(dt.time(20), dt.time(8))


# An independent oracle for the property test: the rules, written out again from the holidays package.
# Postcode -> (holidays subdivision, the voter's zone, whether it votes the Saturday before Paris's
# Sunday); the flow's zone is Paris.
SUBDIVS = {None: (None, PARIS, False), "75001": (None, PARIS, False), "57000": ("57", PARIS, False),
           "67000": ("6AE", PARIS, False), "68100": ("6AE", PARIS, False), "97110": ("971", GUADELOUPE, True),
           "97200": ("972", MARTINIQUE, True), "97400": ("974", REUNION, False),
           "97500": ("PM", MIQUELON, True), "98800": ("NC", ZoneInfo("Pacific/Noumea"), False)}
POLLS = [None, dt.date(2026, 3, 15), dt.date(2027, 4, 10), dt.date(2027, 4, 11), dt.date(2025, 12, 25)]


def oracle_open(now: dt.datetime, postcode: str | None, poll_date: dt.date | None) -> bool:
    subdiv, zone, saturday = SUBDIVS[postcode]
    local = now.astimezone(zone)
    day = local.date()
    if day in holidays.country_holidays("FR", subdiv=subdiv, years=day.year):
        return False
    if poll_date is not None:
        # Silence where the flow is and where the voter is, and a day earlier where the voter votes a day earlier.
        polls = [(poll_date, PARIS), (poll_date, zone)]
        if saturday:
            polls.append((poll_date - dt.timedelta(days=1), zone))
        for poll, tz in polls:
            start = dt.datetime.combine(poll - dt.timedelta(days=1), dt.time(0), tzinfo=tz)
            end = dt.datetime.combine(poll, dt.time(20), tzinfo=tz)
            if start <= now < end:
                return False
    return local.weekday() < 6 and dt.time(8, 30) <= local.time() < dt.time(20)


@settings(max_examples=400, deadline=None)
@given(
    # Any moment, or one in the week around a poll, where the silences meet.
    now=st.one_of(st.datetimes(dt.datetime(2024, 1, 1), dt.datetime(2028, 12, 31), timezones=st.just(UTC)),
                  st.datetimes(dt.datetime(2027, 4, 6), dt.datetime(2027, 4, 13), timezones=st.just(UTC))),
    postcode=st.sampled_from(list(SUBDIVS)),
    poll_date=st.sampled_from(POLLS),
)
def test_open_only_when_every_rule_allows_and_opening_is_open(now, postcode, poll_date) -> None:
    window = sending_window(now, tz=PARIS, poll_date=poll_date, region=region_of(postcode))
    assert window.open == oracle_open(now, postcode, poll_date)
    assert window.open == (window.reason == "")
    assert window.opens_at is not None
    assert window.opens_at >= now
    assert oracle_open(window.opens_at, postcode, poll_date)
    if window.open:
        assert window.opens_at == now
    else:
        # The opening is the first open instant, not just some later one.
        assert not oracle_open(window.opens_at - dt.timedelta(microseconds=1), postcode, poll_date)


@pytest.mark.parametrize(("raw", "postcode"), [
    ("67000", "67000"), ("67 000", "67000"), ("67000 Strasbourg", "67000"), ("Strasbourg (67000)", "67000"),
    ("75011, Paris", "75011"), ("97133", "97133"),
    ("", None), ("Paris", None), ("7501", None), ("750110", None), ("75011 ou 69001", None), ("٦٧٠٠٠", None),
])
def test_a_postcode_is_read_from_what_a_contacts_file_holds(raw: str, postcode: str | None) -> None:
    assert read_postcode(raw) == postcode


def test_a_postcode_written_with_a_town_still_brings_its_holidays() -> None:
    good_friday = paris(2027, 3, 26, 10)
    assert not sending_window(good_friday, tz=PARIS, poll_date=None, region=region_of("67000 Strasbourg")).open
    assert sending_window(good_friday, tz=PARIS, poll_date=None, region=region_of("Strasbourg")).open


@pytest.mark.parametrize(("postcode", "region"), [
    ("97110", "G"), ("97133", "B"), ("97150", "F"), ("97 150 Marigot", "F"), ("97200", "Q"), ("97300", "Y"),
    ("97400", "R"), ("97500", "P"), ("97600", "T"), ("98600", "W"), ("98700", "H"), ("98800", "N"),
    ("57000", "M"), ("67000 Strasbourg", "A"), ("68100", "A"),
    ("75001", ""), ("98000", ""), ("Strasbourg", ""), ("", ""), (None, ""),
])
def test_a_postcode_names_the_voters_region(postcode: str | None, region: str) -> None:
    assert region_of(postcode) == region


def test_every_region_has_a_known_calendar_and_zone() -> None:
    for code, region in REGIONS.items():
        assert code == "" or (len(code) == 1 and code.isupper()), code
        assert region.subdiv is None or region.subdiv in holidays.France.subdivisions, code
        assert region.zone is None or ZoneInfo(region.zone).utcoffset(dt.datetime(2027, 1, 1)) is not None


@pytest.mark.parametrize("region", ["Z", "g", "GG", "75"])
def test_an_unknown_region_is_refused(region: str) -> None:
    with pytest.raises(ValueError, match="unknown region"):
        sending_window(paris(2027, 1, 12, 10), tz=PARIS, poll_date=None, region=region)


NOUMEA, TAHITI = ZoneInfo("Pacific/Noumea"), ZoneInfo("Pacific/Tahiti")
POLL_2027 = dt.date(2027, 4, 11)  # a Sunday
LATE = SendingHours(dt.time(8), dt.time(22), frozenset(range(7)))

# A flow in Paris, a voter elsewhere: (now, region, poll_date, hours, reason or "" if open, opens_at)
OVERSEAS = {
    "guadeloupe_0500_while_paris_is_at_1000": (
        paris(2027, 1, 12, 10), "G", None, SendingHours(), BEFORE, at(GUADELOUPE, 2027, 1, 12, 8, 30)),
    "guadeloupe_1500_while_paris_is_closed_at_2000": (
        paris(2027, 1, 12, 20), "G", None, SendingHours(), "", at(GUADELOUPE, 2027, 1, 12, 15)),
    "noumea_0900_while_paris_is_at_2300": (
        paris(2027, 1, 12, 23), "N", None, SendingHours(), "", at(NOUMEA, 2027, 1, 13, 9)),
    "noumea_2200_while_paris_is_at_1200": (
        paris(2027, 1, 12, 12), "N", None, SendingHours(), AFTER, at(NOUMEA, 2027, 1, 13, 8, 30)),
    "tahiti_saturday_while_paris_is_sunday": (
        paris(2027, 1, 17, 2), "H", None, SendingHours(), "", at(TAHITI, 2027, 1, 16, 15)),
    "reunion_abolition_day_in_a_paris_flow": (
        paris(2027, 12, 20, 10), "R", None, SendingHours(), "public holiday: Abolition de l'esclavage",
        at(REUNION, 2027, 12, 21, 8, 30)),
    "reunion_abolition_day_is_no_holiday_in_paris": (
        paris(2027, 12, 20, 10), "", None, SendingHours(), "", paris(2027, 12, 20, 10)),
    # Silence runs from the eve's midnight in either zone until the polls close in either zone.
    "paris_silence_reaches_guadeloupe_on_friday_evening": (
        at(GUADELOUPE, 2027, 4, 9, 18, 30), "G", POLL_2027, SendingHours(), SILENCE,
        at(GUADELOUPE, 2027, 4, 12, 8, 30)),
    # The Americas and French Polynesia vote on the Saturday: their silence starts at Friday's midnight.
    "guadeloupe_thursday_evening_is_open": (
        at(GUADELOUPE, 2027, 4, 8, 19, 59), "G", POLL_2027, SendingHours(), "", at(GUADELOUPE, 2027, 4, 8, 19, 59)),
    "guadeloupe_votes_on_saturday_so_friday_is_silent": (
        at(GUADELOUPE, 2027, 4, 9, 10), "G", POLL_2027, SendingHours(), SILENCE, at(GUADELOUPE, 2027, 4, 12, 8, 30)),
    "saint_pierre_votes_on_saturday_so_friday_is_silent": (
        at(MIQUELON, 2027, 4, 9, 10), "P", POLL_2027, SendingHours(), SILENCE, at(MIQUELON, 2027, 4, 12, 8, 30)),
    "tahiti_votes_on_saturday_so_friday_is_silent": (
        at(TAHITI, 2027, 4, 9, 10), "H", POLL_2027, SendingHours(), SILENCE, at(TAHITI, 2027, 4, 12, 8, 30)),
    "reunion_votes_on_sunday_so_friday_is_open": (
        at(REUNION, 2027, 4, 9, 10), "R", POLL_2027, SendingHours(), "", at(REUNION, 2027, 4, 9, 10)),
    "noumea_silence_starts_before_paris": (
        at(NOUMEA, 2027, 4, 10, 8, 30), "N", POLL_2027, SendingHours(), SILENCE, at(NOUMEA, 2027, 4, 12, 8, 30)),
    "guadeloupe_polls_still_open_after_paris_closes": (
        at(GUADELOUPE, 2027, 4, 11, 15), "G", POLL_2027, LATE, SILENCE, at(GUADELOUPE, 2027, 4, 11, 20)),
    "paris_polls_close_after_noumea": (
        at(NOUMEA, 2027, 4, 12, 4), "N", POLL_2027, SendingHours(dt.time(0), dt.time(23)), SILENCE,
        at(NOUMEA, 2027, 4, 12, 5)),
}


@pytest.mark.parametrize(("now", "region", "poll_date", "hours", "reason", "opens_at"), OVERSEAS.values(),
                         ids=OVERSEAS.keys())
def test_a_voter_overseas_gets_local_hours_and_holidays_and_both_silences(
    now, region, poll_date, hours, reason, opens_at
) -> None:
    window = sending_window(now, tz=PARIS, poll_date=poll_date, hours=hours, region=region)
    assert window == Window(not reason, reason, opens_at)
    assert window.opens_at.tzinfo is (ZoneInfo(REGIONS[region].zone) if REGIONS[region].zone else PARIS)
    assert next_open(now, tz=PARIS, poll_date=poll_date, hours=hours, region=region) == opens_at


@pytest.mark.parametrize(("now", "region", "closes"), [
    (paris(2027, 1, 12, 15), "", paris(2027, 1, 12, 20)),
    (paris(2027, 1, 12, 23), "N", at(NOUMEA, 2027, 1, 13, 20)),
    (at(GUADELOUPE, 2027, 4, 8, 17), "G", at(GUADELOUPE, 2027, 4, 8, 20)),
    # Friday: Guadeloupe votes on Saturday, so its silence began at midnight.
    (at(GUADELOUPE, 2027, 4, 9, 17), "G", at(GUADELOUPE, 2027, 4, 9, 17)),
    # Réunion votes on Sunday: its silence begins at Saturday's midnight, after Friday's hours.
    (at(REUNION, 2027, 4, 9, 17), "R", at(REUNION, 2027, 4, 9, 20)),
])
def test_an_open_window_closes_at_the_end_of_hours_or_when_a_silence_begins(now, region, closes) -> None:
    assert closes_at(now, tz=PARIS, poll_date=POLL_2027, region=region) == closes
