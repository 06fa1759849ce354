"""The pages people look at: the operators' console, and the dev phone when texts stay local."""

from __future__ import annotations

import datetime as dt
import secrets

from flask import Flask, Request, Response, current_app, request
from flask.sessions import SecureCookieSession, SecureCookieSessionInterface

from bot.gateways.outbox import OutboxGateway
from bot.web import console, csrf, devphone, i18n, notice, objection_list, voter, voter_file  # noqa: F401 (console views)

# Paths that never use a session: the providers' webhooks, the health check and the public notice
# carry no cookie worth reading.
SESSIONLESS = ("/sms/", "/healthz", "/notice/")

# Pages load only what the app serves itself: no CDN, no inline script, no framing.
POLICY = ("default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
          "frame-ancestors 'none'; form-action 'self'; base-uri 'none'")
SCRIPTABLE = frozenset({"text/html", "image/svg+xml"})  # the responses a policy applies to
# Once the site is served over https, browsers refuse plain http to it for a year. Not for
# subdomains: the campaign's other sites are not this app's to decide.
HSTS = "max-age=31536000"
# Blueprints whose responses no browser or proxy may keep: they show numbers or who did what.
# A blueprint of personal pages adds its name here; one view alone sets Cache-Control itself.
PRIVATE = frozenset({"console", "devphone"})
# Blueprints reached without a console sign-in, and why; any other needs a signed-in operator
# with the right role (tests/test_console_security.py checks every route against this).
WITHOUT_SIGN_IN = {
    "sms": "Twilio's webhooks and the health check: each request is proved by Twilio's signature",
    "ovh": "a provider's callbacks, which prove themselves (bot/web/csrf.py EXEMPT)",
    "notice": "the public notice every first text links to",
    "voter": "a voter's own page, opened from their one-time link",
    "devphone": "the local dev phone: loopback clients only, and only without a real provider",
}


def init_ui(app: Flask) -> None:
    """Register the console (and the dev phone with the outbox gateway), with safe sessions and CSRF checks."""
    accord = app.extensions["accord"]
    config = accord.config
    # A Config built in code without a secret (tests) signs this process's sessions with a fresh one.
    app.secret_key = config.secret_key or secrets.token_hex(32)
    https = bool(config.public_url and config.public_url.startswith("https://"))
    app.config.update(
        SESSION_COOKIE_NAME="accord_session", SESSION_COOKIE_HTTPONLY=True, SESSION_COOKIE_SAMESITE="Lax",
        SESSION_COOKIE_SECURE=https, PERMANENT_SESSION_LIFETIME=dt.timedelta(hours=8),
        ACCORD_HSTS=https,  # served over https (PUBLIC_URL says so): every response says to keep to it
    )
    console.init_throttle(app, accord.store.redis)
    i18n.init_i18n(app)
    app.session_interface = PageSessions()
    app.before_request(devphone.loopback_only)  # first: to anyone else, /dev/* does not exist
    app.before_request(csrf.protect)
    app.after_request(_headers)
    app.jinja_env.globals["csrf_token"] = csrf.token
    app.register_blueprint(console.bp)
    app.register_blueprint(notice.bp)
    app.register_blueprint(voter.bp)  # the voter's own page, from a one-time link
    dev_phone = isinstance(accord.gateway, OutboxGateway) and not config.twilio_configured
    if dev_phone:
        app.register_blueprint(devphone.bp)
    # The link shows where the dev phone would answer: registered, and this client on this machine.
    app.jinja_env.globals["dev_phone"] = lambda: dev_phone and devphone.from_this_machine(request.environ)


def _headers(response: Response) -> Response:
    """Add the safety headers to every response: pages, static files, errors, redirects, webhooks."""
    headers = response.headers
    headers.setdefault("X-Content-Type-Options", "nosniff")
    headers.setdefault("Referrer-Policy", "same-origin")
    headers.setdefault("X-Frame-Options", "DENY")
    if response.mimetype in SCRIPTABLE:
        headers.setdefault("Content-Security-Policy", POLICY)
    if current_app.config["ACCORD_HSTS"]:
        headers.setdefault("Strict-Transport-Security", HSTS)
    if request.blueprint in PRIVATE:
        headers["Cache-Control"] = "no-store"
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
