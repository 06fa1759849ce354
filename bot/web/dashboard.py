"""What the console shows, computed from counters, clock and flow: no request, Redis or Twilio.

Its words, dates and numbers are in the page's language (bot/web/i18n.py); outside a request, English.
"""

from __future__ import annotations

import datetime as dt
import json
from dataclasses import dataclass
from zoneinfo import ZoneInfo

import phonenumbers
from flask_babel import gettext

from bot import funnel
from bot.flows import Flow
from bot.web import i18n, names
from bot.windows import silence_span

HOUR = 3600
# (label, how the stage is read from the funnel's counters)
STAGES = ("imported", "asked", "delivered", "answered", "consented", "declined", "opted out", "expired")
MASK = "••"


def mask(phone: str) -> str:
    """Show a number the way the console does: country, first digit and last two, `+33 6 •• •• •• 78`."""
    if not phone:
        return "—"
    if phone.startswith("+33") and len(phone) == 12:
        country, national = "33", phone[3:]
    else:
        try:
            number = phonenumbers.parse(phone)
            country, national = str(number.country_code), phonenumbers.national_significant_number(number)
        except phonenumbers.NumberParseException:  # not a number (a hand-edited entry): show nothing of it
            return MASK
    middle = max(0, len(national) - 3)
    groups = " ".join(MASK for _ in range((middle + 1) // 2)) or MASK
    return f"+{country} {national[:1]} {groups} {national[-2:]}"


def stages(funnel: dict[str, int]) -> list[tuple[str, int]]:
    """Return the funnel's stages, from the counters the store keeps incrementally (no scan)."""
    values = {
        "imported": funnel.get("import:imported", 0),
        "asked": funnel.get("sent", 0),  # consent requests sent (content counts as "sent:content")
        "delivered": funnel.get("status:delivered", 0),
        "answered": funnel.get("answered", 0),
        "consented": funnel.get("consented", 0),
        "declined": funnel.get("declined", 0),
        "opted out": funnel.get("opted_out", 0),
        "expired": funnel.get("expired", 0),
    }
    return [(stage, values[stage]) for stage in STAGES]


@dataclass(frozen=True)
class HistoryRow:
    """Where numbers are now beside what ever happened: a state's count now, the moves into it ever."""

    key: str  # consented, withdrew, objected, erased
    now: int | None  # numbers in that state now; None where no state is it (withdrew, erased)
    ever: int  # moves counted since the flow's counters began (bot/funnel.py): not distinct numbers


def history(stages: list[tuple[str, int]], counters: dict[bytes, bytes]) -> list[HistoryRow]:
    """Set the flow's history, from its move counters (the funnel hash), beside its current stages."""
    now, past = dict(stages), funnel.history(counters)
    return [HistoryRow("consented", now["consented"], past.consented), HistoryRow("withdrew", None, past.withdrew),
            HistoryRow("objected", now["opted out"], past.objected), HistoryRow("erased", None, past.erased)]


def answers_by_hour(funnel: dict[str, int], now: float, hours: int = 48) -> list[tuple[int, int]]:
    """Return (hour start, texts answered) for each of the last `hours` hours, the current one last."""
    current = int(now // HOUR)
    return [(hour * HOUR, funnel.get(f"answers:{hour}", 0)) for hour in range(current - hours + 1, current + 1)]


@dataclass(frozen=True)
class WindowView:
    """The sending window right now, and the electoral silence ahead."""

    open: bool
    reason: str
    opens_at: dt.datetime | None
    silence: str  # the countdown or the silence now, in words; "" when no poll is ahead


def window_view(flow: Flow, now: float) -> WindowView:
    """Say whether sending is open now, why not and until when, and how far the next silence is."""
    window = flow.window(now)
    return WindowView(window.open, window.reason, None if window.open else window.opens_at,
                      silence_text(flow.poll_dates, flow.timezone, now))


def silence_text(poll_dates: tuple[dt.date, ...], tz: ZoneInfo, now: float) -> str:
    """Describe the electoral silence: under way until when, or how long until the next one starts."""
    moment = dt.datetime.fromtimestamp(now, tz)
    for poll in poll_dates:
        start, end = silence_span(poll, tz)
        if moment < start:
            return gettext("Electoral silence starts in %(wait)s, on %(start)s, for the poll of %(poll)s.",
                     wait=duration(start.timestamp() - now), start=i18n.moment(start), poll=i18n.day(poll))
        if moment < end:
            return gettext("Electoral silence now: no consent request or content until the polls close, "
                     "%(end)s (in %(wait)s).", end=i18n.moment(end), wait=duration(end.timestamp() - now))
    return ""


def duration(seconds: float) -> str:
    """Say a span the way a countdown does: `12 d 4 h`, `4 h 12 min`, `12 min`."""
    minutes = max(0, int(seconds // 60))
    days, hours, minutes = minutes // 1440, minutes // 60 % 24, minutes % 60
    if days:
        return gettext("%(days)s d %(hours)s h", days=days, hours=hours)
    if hours:
        return gettext("%(hours)s h %(minutes)s min", hours=hours, minutes=minutes)
    return gettext("%(minutes)s min", minutes=minutes)


@dataclass(frozen=True)
class LedgerRow:
    """One ledger entry as the console lists it: the number masked, the text shortened."""

    at: str
    event: str
    move: str
    phone: str
    text: str


def ledger_rows(entries: list[tuple[str, dict[str, str]]], tz: ZoneInfo, width: int = 80) -> list[LedgerRow]:
    """Turn raw ledger entries into rows a screen can show without exposing the numbers."""
    rows = []
    for _, entry in entries:
        at = i18n.short_moment(dt.datetime.fromtimestamp(float(entry.get("at") or 0), tz))
        if entry.get("erased"):
            rows.append(LedgerRow(at, names.event(entry.get("kind", "")), "", gettext("(erased)"), ""))
            continue
        text = entry.get("text", "")
        if entry.get("event") == "import":
            text = _origin(text)
        text = text if len(text) <= width else text[:width - 1] + "…"
        rows.append(LedgerRow(at, names.event(entry.get("event", "")), names.move(entry.get("state", "")),
                              mask(entry.get("phone", "")), text))
    return rows


def _origin(raw: str) -> str:
    try:
        origin = json.loads(raw)
    except ValueError:  # an older or hand-written entry: show it as it is
        return raw
    return gettext("%(source)s list %(file)s by %(operator)s", source=origin.get("source_type", "?"),
             file=origin.get("file", ""), operator=origin.get("operator", "?"))


def count(value: int) -> str:
    """Write a count as the page's language does: thin spaces between thousands in French, 1 000 000."""
    return i18n.number(value)
