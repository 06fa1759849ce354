"""Decide when a campaign message may be sent: hours, days, holidays, electoral silence."""

from __future__ import annotations

import datetime as dt
import re
from dataclasses import dataclass
from functools import cache
from zoneinfo import ZoneInfo

import holidays

_UTC = dt.UTC
_DAY = dt.timedelta(days=1)
_SEARCH_DAYS = 400
_DAY_NAMES = ("Monday", "Tuesday", "Wednesday", "Thursday", "Friday", "Saturday", "Sunday")
# Five digits, maybe with a space after the second, not within a longer number.
_POSTCODE = re.compile(r"(?<![0-9])([0-9]{2}) ?([0-9]{3})(?![0-9])")
_HOURS_RE = re.compile(r"\s*([0-9]{1,2}):([0-9]{2})\s*-\s*([0-9]{1,2}):([0-9]{2})\s*")

# Postcode prefix -> `holidays.France` subdivision. Alsace-Moselle (57, 67, 68) adds Good Friday
# and 26 December; the package's "57" (Moselle) and "6AE" (Alsace) both carry them. Overseas
# departments and collectivities have their own days (abolition of slavery, etc.) in the same
# package, so they cost one table row each. Saint-Barthélemy and Saint-Martin share Guadeloupe's
# 971 prefix, hence the longer prefixes, which are matched first.
_SUBDIVISIONS = {
    "97133": "BL",
    "97150": "MF",
    "971": "971",
    "972": "972",
    "973": "973",
    "974": "974",
    "975": "PM",
    "976": "976",
    "986": "WF",
    "987": "PF",
    "988": "NC",
    "57": "57",
    "67": "6AE",
    "68": "6AE",
}


# One poll day, or every round of an election (each has its own silence), or none.
PollDates = dt.date | tuple[dt.date, ...] | None


@dataclass(frozen=True)
class SendingHours:
    """Local wall-clock hours [start, end) and weekdays (Monday=0) when sending is allowed."""

    start: dt.time = dt.time(8, 30)
    end: dt.time = dt.time(20, 0)
    weekdays: frozenset[int] = frozenset(range(6))

    def __post_init__(self) -> None:
        if self.start >= self.end:
            raise ValueError(f"sending hours {self.start:%H:%M}-{self.end:%H:%M}: start must be before end")
        if not self.weekdays <= frozenset(range(7)):
            raise ValueError(f"sending weekdays {sorted(self.weekdays)}: use 0 (Monday) to 6 (Sunday)")

    @classmethod
    def parse(cls, text: str) -> SendingHours:
        """Parse "HH:MM-HH:MM" into sending hours on the default weekdays."""
        match = _HOURS_RE.fullmatch(text)
        if match is None:
            raise ValueError(f"sending hours {text!r}: expected HH:MM-HH:MM, e.g. 08:30-20:00")
        h1, m1, h2, m2 = (int(part) for part in match.groups())
        try:
            start, end = dt.time(h1, m1), dt.time(h2, m2)
        except ValueError:
            # 24:00 lands here too: dt.time cannot hold it, and 23:59 says the same thing.
            raise ValueError(f"sending hours {text!r}: hours must be 00-23 and minutes 00-59") from None
        if start >= end:
            raise ValueError(f"sending hours {text!r}: start must be before end")
        return cls(start, end)


@dataclass(frozen=True)
class Window:
    """Whether sending is allowed at one instant, why not, and when it next is."""

    open: bool
    reason: str
    opens_at: dt.datetime | None


@cache
def silence_span(
    poll_date: dt.date, tz: ZoneInfo, polls_close: dt.time = dt.time(20, 0)
) -> tuple[dt.datetime, dt.datetime]:
    """Return [start, end) of electoral silence: from 00:00 on the eve of the poll until polls close."""
    start = dt.datetime.combine(poll_date - _DAY, dt.time(0), tzinfo=tz)
    return start, dt.datetime.combine(poll_date, polls_close, tzinfo=tz)


def sending_window(
    now: dt.datetime,
    *,
    tz: ZoneInfo,
    poll_date: PollDates,
    hours: SendingHours = SendingHours(),
    postcode: str | None = None,
) -> Window:
    """Say whether a campaign message may be sent at `now` (aware datetime, any tz) to a recipient in `tz`."""
    local = _local(now, tz)
    subdiv = _subdivision(postcode)
    reason = _closed_reason(local, tz, poll_date, hours, subdiv)
    if not reason:
        return Window(True, "", local)
    return Window(False, reason, _next_open(local, tz, poll_date, hours, subdiv))


def next_open(
    now: dt.datetime,
    *,
    tz: ZoneInfo,
    poll_date: PollDates,
    hours: SendingHours = SendingHours(),
    postcode: str | None = None,
) -> dt.datetime | None:
    """Return the first instant at or after `now` when sending is allowed, or None within 400 days."""
    return _next_open(_local(now, tz), tz, poll_date, hours, _subdivision(postcode))


def _local(now: dt.datetime, tz: ZoneInfo) -> dt.datetime:
    if now.tzinfo is None or now.utcoffset() is None:
        raise ValueError(f"now must be timezone-aware, got naive {now.isoformat()}")
    return now.astimezone(tz)


def read_postcode(raw: str) -> str | None:
    """Return the French postcode in `raw` ("67000", "67 000", "67000 Strasbourg"), or None if not one."""
    if len(raw) == 5 and raw.isascii() and raw.isdigit():
        return raw  # the usual case, at a fifth of the search's cost (an import reads one a line)
    found = _POSTCODE.findall(raw)
    return found[0][0] + found[0][1] if len(found) == 1 else None


def _subdivision(postcode: str | None) -> str | None:
    # Anything that is not a 5-digit French postcode gets the national list rather than a guess.
    code = read_postcode(postcode or "")
    if code is None:
        return None
    for length in (5, 3, 2):
        if code[:length] in _SUBDIVISIONS:
            return _SUBDIVISIONS[code[:length]]
    return None


@cache
def _holidays(year: int, subdiv: str | None) -> dict[dt.date, str]:
    # A plain dict: HolidayBase lookups parse keys and may expand years, too slow per message.
    return dict(holidays.country_holidays("FR", subdiv=subdiv, years=year, language="fr"))


def _day_reason(day: dt.date, hours: SendingHours, subdiv: str | None) -> str:
    name = _holidays(day.year, subdiv).get(day)
    if name:
        return f"public holiday: {name}"
    if day.weekday() not in hours.weekdays:
        return _DAY_NAMES[day.weekday()]
    return ""


def _in_silence(local: dt.datetime, tz: ZoneInfo, poll_date: PollDates) -> dt.datetime | None:
    """Return the end of electoral silence if `local` falls inside it (before any of the polls)."""
    if poll_date is None:
        return None
    # Compare in UTC: same-tzinfo comparisons use wall time and ignore DST folds.
    utc = local.astimezone(_UTC)
    for day in (poll_date,) if isinstance(poll_date, dt.date) else poll_date:
        start, end = silence_span(day, tz)
        if start.astimezone(_UTC) <= utc < end.astimezone(_UTC):
            return end
    return None


def _closed_reason(
    local: dt.datetime, tz: ZoneInfo, poll_date: PollDates, hours: SendingHours, subdiv: str | None
) -> str:
    # Silence first: it is the legal bar, and the one an operator must see named.
    if _in_silence(local, tz, poll_date):
        return "electoral silence"
    day_reason = _day_reason(local.date(), hours, subdiv)
    if day_reason:
        return day_reason
    wall = local.time()
    if wall < hours.start:
        return "before sending hours"
    if wall >= hours.end:
        return "after sending hours"
    return ""


def _next_open(
    local: dt.datetime, tz: ZoneInfo, poll_date: PollDates, hours: SendingHours, subdiv: str | None
) -> dt.datetime | None:
    day, last = local.date(), local.date() + dt.timedelta(days=_SEARCH_DAYS)
    while day <= last:
        if not _day_reason(day, hours, subdiv):
            # Round-trip through UTC so a start inside a DST gap becomes a real wall time.
            opening = dt.datetime.combine(day, hours.start, tzinfo=tz).astimezone(_UTC).astimezone(tz)
            candidate = max(local, opening, key=lambda moment: moment.astimezone(_UTC))
            if candidate.date() == day and candidate.time() < hours.end:
                silence_end = _in_silence(candidate, tz, poll_date)
                if silence_end is None:
                    return candidate
                # Silence happens once: resume the search from its end, on its own day.
                local, day = silence_end, silence_end.date()
                continue
        day += _DAY
    return None
