"""One voter's file in the console: what is held on a whole number, in every flow, masked until shown.

It is personal data (the voter's own words among it), so it is for admins only: a viewer gets
the page saying so, and the console refuses any viewer's POST (console.require_operator), the
lookup and the reveal included. A number is looked up whole, parsed as imports and commands parse
it (bot/phones.py): a prefix or part of one finds nothing, so no one can list the numbers that
start with 06 12. It travels in a POST body with the session's CSRF token, never in a URL, which
server logs, browser history and the Referer header keep. The page shows it masked; showing it in
full is a second POST, the reveal button's. The page must not hold the number for that button,
nor the server or a cookie keep it: the button carries it sealed (AES-GCM under a key drawn from
the app's secret), for this operator only and for SEALED_FOR seconds.

Every lookup and every reveal goes to the access log, which nothing trims (bot/audit.py), under
the operator's name and with the number's HMAC, never the number; it is written before anything
is read, as `person show` writes its own.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import os

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from flask import current_app, flash, g, redirect, render_template, request, url_for
from flask_babel import gettext as _
from werkzeug.wrappers import Response

from bot import Accord, audit, rights
from bot.phones import PhoneError, normalize
from bot.web import names
from bot.web.console import bp
from bot.web.dashboard import mask
from bot.web.voter import describe

LOOKUP = "voter file (console)"  # the access log's action for a lookup
REVEAL = "voter file, number shown in full (console)"
SEALED_FOR = 15 * 60  # seconds a file's reveal button works: a page left open does not show the number later


@bp.get("/voter")
def voter_file() -> str:
    """Show the form to look a voter up (admins), or say why the page is not for this role."""
    return render_template("console/voter_file.html", **_words())


@bp.post("/voter")
def voter_lookup() -> Response | tuple[str, int] | str:
    """Look a whole number up in every flow, record who did it, and show the file with the number masked."""
    raw = request.form.get("phone", "").strip()
    if not raw:
        flash(_("Type the voter's whole number."), "error")
        return redirect(url_for("console.voter_file"))
    try:
        phone = normalize(raw)
    except PhoneError as error:  # a part of a number is not one: nothing is looked up, nothing recorded
        return render_template("console/voter_file.html", problem=str(error), **_words()), 422
    return _file(phone, reveal=False)


@bp.post("/voter/reveal")
def voter_reveal() -> Response | str:
    """Show the file again with the whole number, from the sealed number its page's button carries."""
    accord: Accord = current_app.extensions["accord"]
    phone = unseal(request.form.get("sealed", ""), g.operator, accord.store.clock())
    if phone is None:
        flash(_("That file's page is too old, or not yours: look the number up again."), "error")
        return redirect(url_for("console.voter_file"))
    return _file(phone, reveal=True)


def _file(phone: str, *, reveal: bool) -> str:
    """Record the lookup or the reveal under the operator's name, then gather and show the file."""
    accord: Accord = current_app.extensions["accord"]
    store = accord.store
    now = store.clock()
    audit.access(store.redis, now, g.operator, REVEAL if reveal else LOOKUP, subject=store.digest(phone))
    flows = describe(accord, rights.show(accord, phone), "")
    return render_template("console/voter_file.html", shown=phone if reveal else mask(phone), revealed=reveal,
                           sealed=seal(phone, g.operator, now), flows=flows, **_words())


def seal(phone: str, operator: str, now: float) -> str:
    """Seal a number for a page's reveal button: unreadable, usable by `operator` only, dated."""
    nonce = os.urandom(12)
    sealed = AESGCM(_key()).encrypt(nonce, f"{now:.0f}|{phone}".encode(), operator.encode())
    return base64.urlsafe_b64encode(nonce + sealed).decode()


def unseal(token: str, operator: str, now: float) -> str | None:
    """Return the number `seal` sealed for `operator` less than SEALED_FOR ago; else None."""
    try:
        raw = base64.urlsafe_b64decode(token.encode())
        opened = AESGCM(_key()).decrypt(raw[:12], raw[12:], operator.encode()).decode()
    except (binascii.Error, ValueError, InvalidTag):  # not base64, too short, altered, another's or another key's
        return None
    issued, _, phone = opened.partition("|")
    return phone if 0 <= now - float(issued) < SEALED_FOR else None


def _key() -> bytes:
    """Draw the sealing key from the app's secret (SECRET_KEY), apart from what it signs."""
    return hashlib.sha256(b"accord voter file\0" + str(current_app.secret_key).encode()).digest()


def _words() -> dict[str, object]:
    """The human names the file shows for states, events and moves, as the rest of the console names them."""
    return {"state_name": names.state, "event_name": names.event, "move_name": names.move}
