"""Decide when a campaign message may be sent: hours, days, holidays, electoral silence, end date."""

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


@dataclass(frozen=True)
class Region:
    """Where a voter lives, as far as sending goes: the holidays subdivision and time zone."""

    subdiv: str | None  # of `holidays.France`; None: the national list
    zone: str | None  # None: the flow's own zone


# A voter's region, one character kept beside the number's state (so uppercase: the state record's
# other characters are [0-9a-z.]). Alsace-Moselle adds Good Friday and 26 December; overseas
# departments and collectivities have their own days (abolition of slavery, etc.) and clocks.
REGIONS = {
    "": Region(None, None),  # metropolitan France, and any number without a readable postcode
    "M": Region("57", None),  # Moselle
    "A": Region("6AE", None),  # Alsace (Bas-Rhin, Haut-Rhin)
    "G": Region("971", "America/Guadeloupe"),
    "B": Region("BL", "America/St_Barthelemy"),
    "F": Region("MF", "America/Marigot"),  # Saint-Martin
    "Q": Region("972", "America/Martinique"),
    "Y": Region("973", "America/Cayenne"),  # Guyane
    "R": Region("974", "Indian/Reunion"),
    "P": Region("PM", "America/Miquelon"),  # Saint-Pierre-et-Miquelon
    "T": Region("976", "Indian/Mayotte"),
    "W": Region("WF", "Pacific/Wallis"),  # Wallis-et-Futuna
    "H": Region("PF", "Pacific/Tahiti"),  # Polynésie française
    "N": Region("NC", "Pacific/Noumea"),  # Nouvelle-Calédonie
}
# The regions that vote on the Saturday, the day before metropolitan France, in presidential,
# legislative and European elections and referendums (exceptions to the Sunday of Code électoral
# art. L. 55: loi n° 62-1292 art. 3 II for the presidential election, as in 2022 on Saturday 9 April).
# Their eve, and so their silence (art. L. 49), starts on Friday at 00:00 local (Conseil
# constitutionnel, 2012). Kept for every poll date, whichever the election: the careful side.
VOTES_THE_DAY_BEFORE = frozenset("GBFQYPH")
# Postcode prefix -> region. Saint-Barthélemy and Saint-Martin share Guadeloupe's 971 prefix,
# hence the longer prefixes, which are matched first.
_POSTCODE_REGIONS = {
    "97133": "B", "97150": "F", "971": "G", "972": "Q", "973": "Y", "974": "R", "975": "P", "976": "T",
    "986": "W", "987": "H", "988": "N", "57": "M", "67": "A", "68": "A",
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
    region: str = "",
    end_date: dt.date | None = None,
) -> Window:
    """Say whether a campaign message may be sent at `now` (aware datetime, any tz) to a voter of `region`.

    `tz` is the flow's zone, where its end date is read. Hours, days and holidays are the voter's
    own, in the region's zone; electoral silence is kept in both zones (the union: the careful side),
    from a day earlier where the voter's region votes on the Saturday (VOTES_THE_DAY_BEFORE).
    """
    rules = _rules(tz, poll_date, hours, region, end_date)
    local = _local(now, rules.zone)
    reason = rules.closed_reason(local)
    if not reason:
        return Window(True, "", local)
    return Window(False, reason, rules.next_open(local))


def next_open(
    now: dt.datetime,
    *,
    tz: ZoneInfo,
    poll_date: PollDates,
    hours: SendingHours = SendingHours(),
    region: str = "",
    end_date: dt.date | None = None,
) -> dt.datetime | None:
    """Return the first instant at or after `now` when sending is allowed, or None (past the end
    date, or within 400 days)."""
    rules = _rules(tz, poll_date, hours, region, end_date)
    return rules.next_open(_local(now, rules.zone))


def closes_at(
    now: dt.datetime,
    *,
    tz: ZoneInfo,
    poll_date: PollDates,
    hours: SendingHours = SendingHours(),
    region: str = "",
    end_date: dt.date | None = None,
) -> dt.datetime:
    """Return when the window open at `now` shuts (`now` itself if it is shut), in the voter's zone.

    That is the end of today's hours, or sooner a silence kept in the flow's zone, or the end date.
    """
    rules = _rules(tz, poll_date, hours, region, end_date)
    return rules.closes_at(_local(now, rules.zone))


def describe(window: Window, closes: dt.datetime | None = None) -> str:
    """Say in one sentence whether the window is open (until `closes`), or why it is shut and when it opens.

    The words `round status`, `outbox` and `reply` print, so an operator reads the same reason everywhere.
    """
    if window.open:
        return "The sending window is open now" + (f"; it closes {closes:%A %d %B %Y %H:%M %Z}." if closes else ".")
    if window.opens_at:
        return (f"The sending window is closed now ({window.reason}); it opens "
                f"{window.opens_at:%A %d %B %Y %H:%M %Z}.")
    return (f"The sending window is closed now ({window.reason}) and opens no more before the "
            "flow's end: what is queued will not be sent.")


def region_of(postcode: str | None) -> str:
    """Return the region (a key of REGIONS) of a French postcode; "" without one, or in the metropole."""
    # Anything that is not a 5-digit French postcode gets the national rules rather than a guess.
    code = read_postcode(postcode or "")
    if code is None:
        return ""
    for length in (5, 3, 2):
        region = _POSTCODE_REGIONS.get(code[:length])
        if region is not None:
            return region
    return ""


def read_postcode(raw: str) -> str | None:
    """Return the French postcode in `raw` ("67000", "67 000", "67000 Strasbourg"), or None if not one."""
    if len(raw) == 5 and raw.isascii() and raw.isdigit():
        return raw  # the usual case, at a fifth of the search's cost (an import reads one a line)
    found = _POSTCODE.findall(raw)
    return found[0][0] + found[0][1] if len(found) == 1 else None


def _local(now: dt.datetime, tz: ZoneInfo) -> dt.datetime:
    if now.tzinfo is None or now.utcoffset() is None:
        raise ValueError(f"now must be timezone-aware, got naive {now.isoformat()}")
    return now.astimezone(tz)


def _utc(moment: dt.datetime) -> dt.datetime:
    # Compare in UTC: same-tzinfo comparisons use wall time and ignore DST folds.
    return moment.astimezone(_UTC)


@cache
def _rules(tz: ZoneInfo, poll_date: PollDates, hours: SendingHours, region: str,
           end_date: dt.date | None) -> _Rules:
    place = REGIONS.get(region)
    if place is None:
        raise ValueError(f"unknown region {region!r}: expected one of {', '.join(map(repr, REGIONS))}")
    zone = ZoneInfo(place.zone) if place.zone else tz
    polls = () if poll_date is None else (poll_date,) if isinstance(poll_date, dt.date) else poll_date
    # Silence where the flow is, where the voter is, and a day earlier where the voter votes a day earlier.
    spans = {silence_span(day, place) for day in polls for place in (tz, zone)}
    if region in VOTES_THE_DAY_BEFORE:
        spans |= {silence_span(day - _DAY, zone) for day in polls}
    silences = tuple(sorted({(_utc(start), _utc(end)) for start, end in spans}))
    end = None if end_date is None else _utc(dt.datetime.combine(end_date + _DAY, dt.time(0), tzinfo=tz))
    return _Rules(zone, hours, place.subdiv, silences, end_date, end)


@dataclass(frozen=True)
class _Rules:
    """The rules for one voter of one flow, made once: `_rules` caches them."""

    zone: ZoneInfo  # the voter's
    hours: SendingHours
    subdiv: str | None
    silences: tuple[tuple[dt.datetime, dt.datetime], ...]  # [start, end) in UTC, by start
    end_date: dt.date | None
    end: dt.datetime | None  # in UTC: midnight after the end date, in the flow's zone

    def closed_reason(self, local: dt.datetime) -> str:
        """Say why sending is shut at `local`, or "" if it is open."""
        if self.end is not None and _utc(local) >= self.end:
            return f"after the flow's end date, {self.end_date}"
        # Silence next: it is the legal bar, and the one an operator must see named.
        if self.silence_end(local):
            return "electoral silence"
        day_reason = _day_reason(local.date(), self.hours, self.subdiv)
        if day_reason:
            return day_reason
        wall = local.time()
        if wall < self.hours.start:
            return "before sending hours"
        if wall >= self.hours.end:
            return "after sending hours"
        return ""

    def silence_end(self, local: dt.datetime) -> dt.datetime | None:
        """Return the end of the electoral silence `local` falls in, in the voter's zone, or None."""
        utc = _utc(local)
        ends = [end for start, end in self.silences if start <= utc < end]
        return max(ends).astimezone(self.zone) if ends else None

    def next_open(self, local: dt.datetime) -> dt.datetime | None:
        """Return the first open instant at or after `local`, or None."""
        hours = self.hours
        day, last = local.date(), local.date() + dt.timedelta(days=_SEARCH_DAYS)
        while day <= last:
            if not _day_reason(day, hours, self.subdiv):
                # Round-trip through UTC so a start inside a DST gap becomes a real wall time.
                opening = dt.datetime.combine(day, hours.start, tzinfo=self.zone).astimezone(_UTC).astimezone(self.zone)
                candidate = max(local, opening, key=_utc)
                if candidate.date() == day and candidate.time() < hours.end:
                    if self.end is not None and _utc(candidate) >= self.end:
                        return None  # no window left: every later one is later still
                    silence_end = self.silence_end(candidate)
                    if silence_end is None:
                        return candidate
                    # Silence happens once: resume the search from its end, on its own day.
                    local, day = silence_end, silence_end.date()
                    continue
            day += _DAY
        return None

    def closes_at(self, local: dt.datetime) -> dt.datetime:
        """Return when the window open at `local` shuts (`local` itself if it is shut)."""
        if self.closed_reason(local):
            return local
        close = dt.datetime.combine(local.date(), self.hours.end, tzinfo=self.zone)
        # An end of hours inside a DST gap or fold has two readings: the earlier one is the careful one.
        limits = [min(_utc(close), _utc(close.replace(fold=1)))]
        utc = _utc(local)
        limits += [start for start, _ in self.silences if start > utc][:1]
        if self.end is not None:
            limits.append(self.end)
        return min(limits).astimezone(self.zone)


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
