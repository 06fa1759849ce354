"""The pages' language: French first, English available, chosen by the operator or the browser.

Strings are written in English in the code and templates (`_("...")`) and translated by the
catalogue under bot/web/translations (`make translations` extracts, updates and compiles it; the
compiled .mo is committed beside its .po, and tests/test_i18n.py checks they agree). The language
is the one the operator chose (kept in their account, put in their session at sign-in), else the
browser's first of ours, else French: the campaign's staff and its texts are.

Dates and numbers follow the page's language ("7 déc. 2026", "1 000"); times stay in the zone the
caller names, a flow's own, since a campaign's clock is where its voters are.
"""

from __future__ import annotations

import datetime as dt
import functools
from pathlib import Path
from zoneinfo import ZoneInfo

from babel import Locale, dates, numbers
from flask import Flask, request, session
from flask_babel import Babel, get_locale

from bot.operators import LANGUAGES
from bot.web import names

DEFAULT = LANGUAGES[0]
TRANSLATIONS = Path(__file__).parent / "translations"


def init_i18n(app: Flask) -> None:
    """Translate the pages: `_`, `gettext` and `ngettext` in templates and code, per request."""
    app.config.update(BABEL_DEFAULT_LOCALE=DEFAULT, BABEL_DEFAULT_TIMEZONE="Europe/Paris",
                      BABEL_TRANSLATION_DIRECTORIES=str(TRANSLATIONS))
    Babel(app, locale_selector=locale)
    app.jinja_env.globals.update(get_locale=get_locale, languages=LANGUAGES)
    app.jinja_env.filters.update(
        number=number, day=day, moment=moment, state_name=names.state, stage_name=names.stage,
        event_name=names.event, move_name=names.move, action_name=names.action,
        reason_name=names.reason, role_name=names.role,
        level_name=names.level, detail_name=names.detail)


def locale() -> str:
    """Return the language of this request's page."""
    chosen = session.get("lang") if request else None
    if chosen in LANGUAGES:
        return chosen
    return request.accept_languages.best_match(LANGUAGES, default=DEFAULT) if request else DEFAULT


def current() -> str:
    """Return this request's language; outside a request, English, the words' own: no catalogue applies there."""
    locale = get_locale()
    return str(locale) if locale else "en"


def number(value: float) -> str:
    """Write a count as the page's language does: `1 000 000` in French, `1,000,000` in English."""
    language = current()
    if isinstance(value, int):  # a chart writes dozens a page: the language's separator, found once
        return f"{value:,}".replace(",", _group(language))
    return numbers.format_decimal(value, locale=language)


@functools.cache
def _group(language: str) -> str:
    return numbers.get_group_symbol(language)


def day(value: dt.date) -> str:
    """Write a date: `7 déc. 2026`, `Dec 7, 2026`."""
    return dates.format_date(value, "medium", locale=current())


def moment(value: dt.datetime | float, tz: ZoneInfo | None = None, *, seconds: bool = False) -> str:
    """Write a moment with its weekday, time and zone: `lun. 7 déc. 2026 14:05 CET`.

    An epoch is shown in `tz`; an aware datetime in its own zone.
    """
    at = dt.datetime.fromtimestamp(value, tz) if isinstance(value, (int, float)) else value
    pattern = _pattern(current(), "yMMMEd", "Hms" if seconds else "Hm")
    return f"{dates.format_datetime(at, pattern, locale=current())} {at.tzname() or ''}".rstrip()


def short_moment(value: dt.datetime, *, seconds: bool = True) -> str:
    """Write a recent moment, its day and time, for lists and charts: `7 déc. 14:05:03`."""
    language = current()
    return dates.format_datetime(value, _pattern(language, "MMMd", "Hms" if seconds else "Hm"), locale=language)


@functools.cache
def _pattern(language: str, day: str, time: str) -> str:
    """Return the language's pattern for a day and a time (skeletons, as CLDR names them), found once.

    Matching a skeleton costs more than formatting: a ledger table and a chart format dozens of times a page.
    """
    skeletons = Locale.parse(language).datetime_skeletons
    return f"{skeletons[dates.match_skeleton(day, skeletons)]} {skeletons[dates.match_skeleton(time, skeletons)]}"
