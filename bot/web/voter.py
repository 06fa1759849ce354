"""The voter's own page: what is held on their number, and two buttons, object and erase.

A voter reaches it from the one-time link a rights keyword brings (bot/voter_access.py). The
link's page only offers to open it: link previews fetch what a text contains, and must not use it
up. Opening it starts a page session whose id alone is in a cookie; the number stays on the server,
so nothing in a URL or a form can name another number. The page shows what `person show` shows
and its buttons do what STOP and `person erase` do, by calling the same functions, each written to
the rights register and the access log.
"""

from __future__ import annotations

import datetime as dt
import json
import secrets
from zoneinfo import ZoneInfo

from flask import Blueprint, Response, current_app, make_response, redirect, render_template, request, url_for
from flask.blueprints import BlueprintSetupState

from bot import Accord, rights, rights_requests, voter_access
from bot.voter_access import IDENTITY, PAGE_TTL, VOTER, Holder
from bot.web.console import client_address
from bot.web.dashboard import mask

bp = Blueprint("voter", __name__, url_prefix="/v")
COOKIE = "accord_voter"  # the page session's random id; never the number
PARIS = ZoneInfo("Europe/Paris")
# Nothing from anywhere else, no inline script or style, no framing, no referrer (a link is a key).
POLICY = ("default-src 'none'; style-src 'self'; img-src 'self'; form-action 'self'; "
          "frame-ancestors 'none'; base-uri 'none'")
ORIGIN_FIELDS = ("source_type", "broker", "contract", "file", "imported_at")


@bp.record_once
def _serve(state: BlueprintSetupState) -> None:
    """Tell the store where links lead: the public address, else the local one the dev phone uses."""
    accord = state.app.extensions["accord"]
    accord.store.page_root = accord.config.public_url or f"http://127.0.0.1:{accord.config.port}"


@bp.before_request
def _limit() -> Response | None:
    """Refuse a client that asks too often: guessing links is the one thing many requests would do."""
    if not voter_access.allow_client(_accord().store.redis, client_address()):
        return _page("voter/gone.html", 429, lang="fr", busy=True)
    return None


@bp.after_request
def _headers(response: Response) -> Response:
    response.headers["Content-Security-Policy"] = POLICY
    response.headers["X-Frame-Options"] = "DENY"
    response.headers["Referrer-Policy"] = "no-referrer"
    response.headers["X-Content-Type-Options"] = "nosniff"
    response.headers["Cache-Control"] = "no-store"
    response.headers["X-Robots-Tag"] = "noindex"
    return response


@bp.get("/<token>")
def link(token: str) -> Response:
    """Offer to open a live link (without using it); any other gets the same page."""
    accord = _accord()
    holder = voter_access.peek(accord.store.redis, token, accord.store.clock())
    if holder is None:
        return _gone()
    return _page("voter/open.html", lang=holder.language, token=token)


@bp.post("/<token>")
def use_link(token: str) -> Response:
    """Use the link up, answer its rights request, and start the page session."""
    store = _accord().store
    now = store.clock()
    opened = voter_access.use(store.redis, token, now)
    if opened is None:
        return _gone()
    session, holder = opened
    found = rights_requests.get(store.redis, holder.ref)
    if found is not None and found.is_open:  # a retried text's second link answers the same request
        rights_requests.close(store.redis, holder.ref, "shown on the voter's page", now, VOTER)
    response = redirect(url_for("voter.page"), 303)
    response.set_cookie(COOKIE, session, max_age=PAGE_TTL, path=bp.url_prefix, httponly=True, samesite="Strict",
                        secure=request.is_secure or current_app.config["SESSION_COOKIE_SECURE"])
    return response


@bp.get("/page")
def page() -> Response:
    """Show everything held on the session's number, as `person show` does."""
    accord, holder = _accord(), _holder()
    if holder is None:
        return _gone()
    store = accord.store
    rights_requests.record_access(store.redis, store.clock(), VOTER, "person show (voter page)",
                                  subject=holder.digest, request=holder.ref)
    flows = describe(accord, rights.show(accord, holder.phone), holder.language)
    return _page("voter/page.html", lang=holder.language, number=mask(holder.phone), flows=flows,
                 done=request.args.get("done", ""))


@bp.post("/page/object")
def object_everywhere() -> Response:
    """Object on every sender, as STOP does; record it in the rights register."""
    accord, holder = _accord(), _holder()
    if holder is None:
        return _gone()
    ref = _open(accord, holder, "objection")
    count = rights.object_everywhere(accord, holder.phone, detail="voter-page")
    _close(accord, ref, f"objection recorded on every sender: {count} flow(s) opted out")
    return redirect(url_for("voter.page", done="objection"), 303)


@bp.post("/page/erase")
def erase() -> Response:
    """Erase the number everywhere, as `person erase` does, keeping only its objection's HMAC."""
    accord, holder = _accord(), _holder()
    if holder is None:
        return _gone()
    if request.form.get("confirm") != "yes":
        return redirect(url_for("voter.page", done="confirm"), 303)
    store = accord.store
    ref = _open(accord, holder, "erasure")
    rights_requests.record_access(store.redis, store.clock(), VOTER, "person erase (voter page)",
                                  subject=holder.digest, request=ref)
    # The page session goes with the rest (Store._forget_pages). Redis's files are left to rewrite
    # without holding up a web worker, which the webhook needs (bot/compaction.py).
    erased = rights.erase(accord, holder.phone, wait=False)
    _close(accord, ref, f"erased: {sum(erased.values())} ledger entries in {len(erased)} flow(s); "
                        "only the suppression HMAC kept")
    response = _page("voter/erased.html", lang=holder.language)
    response.delete_cookie(COOKIE, path=bp.url_prefix)
    return response


def describe(accord: Accord, held: dict, language: str) -> list[dict]:
    """Turn what `rights.show` gathers into what the page lists: per flow, its facts and dated events."""
    described = []
    for flow_id, facts in held["flows"].items():
        flow = accord.flows.get(flow_id)
        zone = flow.timezone if flow else PARIS
        try:
            origin = json.loads(facts["import"]) if facts["import"].startswith("{") else {}
        except ValueError:  # an origin recorded as plain text: shown as it is
            origin = {}
        events = []
        for entry in facts["ledger"]:
            replies = json.loads(entry["reply"]) if entry.get("reply") else []
            event = entry.get("event", "")
            kind = event if event.startswith("in:") else event.partition(":")[0]  # "ask:IMPORT" -> "ask"
            events.append({"at": _when(entry.get("at", ""), zone), "event": event, "kind": kind,
                           "move": entry.get("state", ""), "text": entry.get("text", ""), "replies": replies})
        described.append({**facts, "id": flow_id, "events": events,
                          "origin": [(name, _moment(str(origin[name]), zone)) for name in ORIGIN_FIELDS
                                     if origin.get(name)],
                          "origin_text": "" if origin else facts["import"], "language": language})
    return described


def _moment(value: str, zone: ZoneInfo) -> str:
    """Show an ISO 8601 moment (an import's) as the page shows times; anything else as it is."""
    try:
        moment = dt.datetime.fromisoformat(value)
    except ValueError:
        return value
    return moment.astimezone(zone).strftime("%d/%m/%Y %H:%M") if moment.tzinfo else value


def _when(at: str, zone: ZoneInfo) -> str:
    return dt.datetime.fromtimestamp(float(at), zone).strftime("%d/%m/%Y %H:%M") if at else ""


def _open(accord: Accord, holder: Holder, kind: str) -> str:
    """Add a request the page makes to the rights register; return its reference."""
    store = accord.store
    now = store.clock()
    ref = f"page-{rights_requests.today(now):%Y%m%d}-{secrets.token_hex(5)}"
    rights_requests.add(store.redis, rights_requests.Request(
        ref, kind, "page", IDENTITY, rights_requests.today(now), holder.digest, VOTER, now))
    return ref


def _close(accord: Accord, ref: str, outcome: str) -> None:
    rights_requests.close(accord.store.redis, ref, outcome, accord.store.clock(), VOTER)


def _holder() -> Holder | None:
    store = _accord().store
    return voter_access.page(store.redis, request.cookies.get(COOKIE, ""), store.clock())


def _gone() -> Response:
    """Answer every dead link or session alike: unknown, used, expired or erased say the same."""
    return _page("voter/gone.html", 404, lang="fr")


def _page(template: str, status: int = 200, **context: object) -> Response:
    return make_response(render_template(template, **context), status)


def _accord() -> Accord:
    return current_app.extensions["accord"]
