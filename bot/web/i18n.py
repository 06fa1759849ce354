"""The pages' language: French first, English available, chosen by the operator or the browser.

Strings are written in English in the code and templates (`_("...")`) and translated by the
catalogue under bot/web/translations. The language is the one the operator chose (kept in their
session), else the browser's first of ours, else French: the campaign's staff and its texts are.
"""

from __future__ import annotations

from pathlib import Path

from flask import Flask, request, session
from flask_babel import Babel, get_locale

LANGUAGES = ("fr", "en")
DEFAULT = "fr"
TRANSLATIONS = Path(__file__).parent / "translations"


def init_i18n(app: Flask) -> None:
    """Translate the pages: `_`, `gettext` and `ngettext` in templates and code, per request."""
    app.config.update(BABEL_DEFAULT_LOCALE=DEFAULT, BABEL_DEFAULT_TIMEZONE="Europe/Paris",
                      BABEL_TRANSLATION_DIRECTORIES=str(TRANSLATIONS))
    Babel(app, locale_selector=locale)
    app.jinja_env.globals["get_locale"] = get_locale


def locale() -> str:
    """Return the language of this request's page."""
    chosen = session.get("lang") if request else None
    if chosen in LANGUAGES:
        return chosen
    return request.accept_languages.best_match(LANGUAGES, default=DEFAULT) if request else DEFAULT
