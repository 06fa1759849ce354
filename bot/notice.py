"""A flow's `[notice]` table: what the privacy and political-advertising notice must say.

GDPR art. 13/14 asks who the controller is and how to reach it and its data protection officer;
Regulation (EU) 2024/900 asks a political message's notice for its sponsor, the election, the
period, the amounts spent and where they come from. The rest of the notice (purpose, source,
retention, provider, targeting) follows from the flow and the bot's own rules, so it is not
typed twice. Pure: parsing and the figures the page shows, no Flask, Redis or files.
"""

from __future__ import annotations

import datetime as dt
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from decimal import Decimal

from babel.numbers import format_currency

EMAIL = re.compile(r"[^@\s<>\"'()]+@[^@\s<>\"'()]+\.[A-Za-z]{2,}")
WEB = re.compile(r"https?://[^\s<>\"']+\.[^\s<>\"']+")
MAX_FIELD = 500  # characters: a notice field is a line or two, never a document
EARLIEST = dt.date(2000, 1, 1)  # a period starting before it is a typo (0027 for 2027)

TEXT_FIELDS = ("controller_address", "sponsor", "sponsor_address", "election", "funding")
EMAIL_FIELDS = ("contact_email", "sponsor_email")
EMAIL_OR_WEB_FIELDS = ("dpo_contact",)
DATE_FIELDS = ("period_start",)
REQUIRED = (*TEXT_FIELDS, *EMAIL_FIELDS, *EMAIL_OR_WEB_FIELDS, *DATE_FIELDS)

# How the pages name an import's source type (bot/rounds.py SOURCE_TYPES).
SOURCE_TYPES = {
    "fr": {"broker": "location ou achat auprès d'un courtier en données", "supporters": "sympathisants de la campagne",
           "members": "adhérents du parti ou de l'association", "petition": "signataires d'une pétition",
           "event": "participants à un événement de la campagne"},
    "en": {"broker": "rented or bought from a data broker", "supporters": "the campaign's own supporters",
           "members": "party or association members", "petition": "signatories of a petition",
           "event": "attendees of a campaign event"},
}


class NoticeError(ValueError):
    """A `[notice]` table missing what the law asks; `key` names the field as the flow file does."""

    def __init__(self, field: str, problem: str) -> None:
        self.key = f"notice.{field}" if field else "notice"
        super().__init__(f"{self.key}: {problem}")
        self.problem = problem


@dataclass(frozen=True)
class Notice:
    """The facts of a notice only the campaign knows."""

    controller_address: str  # postal address of the controller (art. 13(1)(a))
    contact_email: str  # where voters exercise their rights (art. 12, 13(2)(b))
    dpo_contact: str  # the data protection officer: an email or a web page (art. 13(1)(b))
    sponsor: str  # who pays for the messages (Reg. 2024/900)
    sponsor_address: str
    sponsor_email: str
    election: str  # the election the messages are linked to
    period_start: dt.date  # when the messages start; they end on the flow's end date
    funding: str  # where the money comes from: public or private, from inside the Union or not


@dataclass(frozen=True)
class Import:
    """Where one import's numbers came from, as a voter may read it (no operator, no file name)."""

    source_type: str
    broker: str
    contract: str
    day: dt.date | None


def parse(section: object, *, last_poll: dt.date) -> Notice:
    """Validate a flow's `[notice]` table; raise NoticeError naming the first field at fault."""
    if not isinstance(section, Mapping):
        raise NoticeError("", "missing [notice] table: the privacy and political-advertising notice")
    unknown = sorted(set(section) - set(REQUIRED))
    if unknown:
        raise NoticeError(", notice.".join(unknown), "unknown key")
    values: dict[str, object] = {}
    for key in REQUIRED:
        value = section.get(key)
        if value is None:
            raise NoticeError(key, "missing")
        values[key] = _date(key, value, last_poll) if key in DATE_FIELDS else _text(key, value)
    for key in EMAIL_FIELDS:
        if not EMAIL.fullmatch(str(values[key])):
            raise NoticeError(key, f"{str(values[key])[:80]!r} is not an email address")
    for key in EMAIL_OR_WEB_FIELDS:
        if not (EMAIL.fullmatch(str(values[key])) or WEB.fullmatch(str(values[key]))):
            raise NoticeError(key, f"{str(values[key])[:80]!r} is neither an email address nor an http(s) link")
    return Notice(**values)  # type: ignore[arg-type]


def _text(key: str, value: object) -> str:
    if not isinstance(value, str) or not value.strip():
        raise NoticeError(key, "must be a non-empty string")
    if len(value) > MAX_FIELD:
        raise NoticeError(key, f"{len(value)} characters; keep it under {MAX_FIELD}")
    return " ".join(value.split())


def _date(key: str, value: object, last_poll: dt.date) -> dt.date:
    if isinstance(value, dt.datetime) or not isinstance(value, dt.date):
        raise NoticeError(key, f"must be a TOML date like 2027-01-15, not {value!r}"[:200])
    if value < EARLIEST:
        raise NoticeError(key, f"{value} is before {EARLIEST.year}: a typo?")
    if value > last_poll:
        raise NoticeError(key, f"{value} is after the last poll_date, {last_poll}")
    return value


def imports(origins: Iterable[Mapping[str, object]]) -> list[Import]:
    """Read the origins the ledger records (oldest first) into what the notice shows, once each."""
    shown: list[Import] = []
    for origin in origins:
        try:
            day: dt.date | None = dt.datetime.fromisoformat(str(origin.get("imported_at", ""))).date()
        except ValueError:  # an origin recorded without a readable time still names its broker
            day = None
        found = Import(str(origin.get("source_type", "")), str(origin.get("broker", "")),
                       str(origin.get("contract", "")), day)
        if found not in shown:
            shown.append(found)
    return shown


def euros(amount: Decimal, language: str, *, unit: bool = False) -> str:
    """Write an amount as the page's readers do: "55,53 €", "€55.53"; a `unit` price keeps its fraction of a cent."""
    if unit:
        pattern = "#,##0.00##\u00a0¤" if language == "fr" else "¤#,##0.00##"
        return format_currency(amount, "EUR", format=pattern, locale=language, currency_digits=False)
    return format_currency(amount, "EUR", locale=language)


def period_end(end_date: dt.date | None, poll_dates: tuple[dt.date, ...]) -> dt.date:
    """Return the last day messages go: the flow's end date, else its last poll."""
    return end_date or poll_dates[-1]


MONTHS = {
    "fr": ("janvier", "février", "mars", "avril", "mai", "juin", "juillet", "août", "septembre", "octobre",
           "novembre", "décembre"),
    "en": ("January", "February", "March", "April", "May", "June", "July", "August", "September", "October",
           "November", "December"),
}


def long_date(day: dt.date, language: str) -> str:
    """Write a date as its readers do: "11 avril 2027", "11 April 2027" (no locale to install)."""
    return f"{day.day}{'er' if language == 'fr' and day.day == 1 else ''} {MONTHS[language][day.month - 1]} {day.year}"


def contact_link(value: str) -> str:
    """Return the link for a contact field that holds an email address or an http(s) page."""
    return value if WEB.fullmatch(value) else f"mailto:{value}"
