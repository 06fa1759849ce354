"""The pages people look at: the operators' console, and the dev phone when texts stay local."""

from __future__ import annotations

import datetime as dt
import secrets

from flask import Flask, Request, Response, request
from flask.sessions import SecureCookieSession, SecureCookieSessionInterface

from bot.gateways.outbox import OutboxGateway
from bot.web import console, csrf, devphone

# Paths that never use a session: Twilio's webhooks and the health check carry no cookie worth reading.
SESSIONLESS = ("/sms/", "/healthz")

# Pages load only what the app serves itself: no CDN, no inline script, no framing.
POLICY = ("default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
          "frame-ancestors 'none'; form-action 'self'; base-uri 'none'")


def init_ui(app: Flask) -> None:
    """Register the console (and the dev phone with the outbox gateway), with safe sessions and CSRF checks."""
    accord = app.extensions["accord"]
    config = accord.config
    # A Config built in code without a secret (tests) signs this process's sessions with a fresh one.
    app.secret_key = config.secret_key or secrets.token_hex(32)
    app.config.update(
        SESSION_COOKIE_NAME="accord_session", SESSION_COOKIE_HTTPONLY=True, SESSION_COOKIE_SAMESITE="Lax",
        SESSION_COOKIE_SECURE=bool(config.public_url and config.public_url.startswith("https://")),
        PERMANENT_SESSION_LIFETIME=dt.timedelta(hours=8),
    )
    app.session_interface = PageSessions()
    app.before_request(csrf.protect)
    app.after_request(_headers)
    app.jinja_env.globals["csrf_token"] = csrf.token
    app.register_blueprint(console.bp)
    dev_phone = isinstance(accord.gateway, OutboxGateway) and not config.twilio_configured
    if dev_phone:
        app.register_blueprint(devphone.bp)
    app.jinja_env.globals["dev_phone"] = dev_phone


def _headers(response: Response) -> Response:
    if request.blueprint in ("console", "devphone"):
        response.headers.setdefault("Content-Security-Policy", POLICY)
        response.headers.setdefault("X-Frame-Options", "DENY")
        response.headers.setdefault("Referrer-Policy", "same-origin")
        response.headers.setdefault("X-Content-Type-Options", "nosniff")
    return response


class PageSessions(SecureCookieSessionInterface):
    """Signed cookie sessions for the pages people use, none for the webhooks.

    Opening one builds a signing serializer on every request; the webhook, which answers
    thousands of texts a minute, has no use for it.
    """

    def open_session(self, app: Flask, request: Request) -> SecureCookieSession | None:
        if request.path.startswith(SESSIONLESS):
            return None  # Flask then uses a null session, which is never saved
        return super().open_session(app, request)
