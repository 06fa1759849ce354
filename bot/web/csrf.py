"""Cross-site request forgery: every state-changing request carries the session's own token."""

from __future__ import annotations

import hmac
import secrets

from flask import abort, request, session

FIELD = "csrf_token"  # form field
HEADER = "X-CSRF-Token"  # or header, for the dev phone's fetch calls
SAFE = frozenset({"GET", "HEAD", "OPTIONS"})
EXEMPT = frozenset({"sms", "ovh"})  # provider callbacks prove themselves (signature; secret URL) instead


def token() -> str:
    """Return this session's token, making one on first use (templates call it as csrf_token())."""
    if "csrf" not in session:
        session["csrf"] = secrets.token_urlsafe(32)
    return session["csrf"]


def protect() -> None:
    """Refuse with 400 a state-changing request whose token is missing or not this session's."""
    if request.method in SAFE or request.blueprint in EXEMPT or request.url_rule is None:
        return  # (no rule: the request ends in 404 or 405, changing nothing)
    sent = request.form.get(FIELD) or request.headers.get(HEADER, "")
    expected = session.get("csrf", "")
    if not expected or not hmac.compare_digest(sent.encode(), expected.encode()):
        abort(400, description="missing or invalid CSRF token; reload the page and try again")
