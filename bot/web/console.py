"""The operators' console: sign-in, each flow's funnel, window, texts and ledger, pause and resume.

Every request but the sign-in needs a signed-in operator, and every request that changes
anything needs the admin role, unless named in VIEWER_MAY: a route added later is refused to
viewers until someone decides otherwise.
"""

from __future__ import annotations

import functools
import ipaddress
import time
from urllib.parse import urlsplit
from zoneinfo import ZoneInfo

from flask import Blueprint, Flask, abort, current_app, flash, g, redirect, render_template, request, session, url_for
from flask_babel import gettext as _
from limits import RateLimitItem, parse
from limits.storage import RedisStorage
from limits.strategies import MovingWindowRateLimiter
from redis import Redis
from redis.exceptions import RedisError
from werkzeug.exceptions import HTTPException
from werkzeug.wrappers import Response

from bot import Accord, audit, compaction, costs, lint
from bot.flows import Flow
from bot.keys import LIMITS_KEY, funnel_key
from bot.operators import ADMIN, LANGUAGES, MAX_FAILURES, Operators
from bot.web import charts, csrf, dashboard, i18n, names
from bot.workers import resume

bp = Blueprint("console", __name__, url_prefix="/console")
TZ = ZoneInfo("Europe/Paris")  # the console's clock for entries no flow owns (the audit trail)
OPEN = frozenset({"console.login"})  # the only page shown before signing in
# The only changes a viewer may make: ending their own session, and the language they read it in.
VIEWER_MAY = frozenset({"console.logout", "console.language"})
LEDGER_ROWS = 20
AUDIT_ROWS = 50
FAILED_ROWS = 10
# Sign-in posts per client address in any hour, counted before the password is checked. Fewer
# than the per-name lock needs in its hour, so no single address can lock an operator out.
SIGN_IN_LIMIT: RateLimitItem = parse(f"{MAX_FAILURES // 2} per hour")
THROTTLE = "accord.sign-in-throttle"  # its key in app.extensions


def client_address() -> str:
    """Name the client a sign-in comes from, for the throttle and the failed sign-in counts.

    With PUBLIC_URL unset the app trusts one proxy's X-Forwarded-* (ProxyFix, bot/__init__.py), so
    `remote_addr` is the address that proxy saw; with PUBLIC_URL set nothing forwarded is trusted
    and it is the socket's peer (behind a proxy: the proxy, which all clients then share). An IPv6
    client is counted by its /64, the block one subscriber usually holds, so it cannot hop addresses.
    """
    raw = request.remote_addr or ""
    try:
        address = ipaddress.ip_address(raw)
    except ValueError:  # a unix socket, or a test's odd value: still one bucket per value
        return raw[:64] or "unknown"
    if isinstance(address, ipaddress.IPv6Address):
        if address.ipv4_mapped:  # an IPv4 client on a dual-stack socket
            return str(address.ipv4_mapped)
        return str(ipaddress.ip_network(f"{address}/64", strict=False))
    return str(address)


def init_throttle(app: Flask, redis: Redis) -> None:
    """Keep the sign-in throttle's counts in the app's own Redis, through its connection pool.

    The `limits` library is Flask-Limiter's engine, used here without Flask-Limiter's hooks:
    those run on every request, the webhook's thousands a minute included, for a limit on one form.
    A moving window, kept by one Lua script a hit, so attempts arriving together are counted exactly.
    """
    storage = RedisStorage("redis://", connection_pool=redis.connection_pool, key_prefix=LIMITS_KEY)
    app.extensions[THROTTLE] = MovingWindowRateLimiter(storage)


def _accord() -> Accord:
    return current_app.extensions["accord"]


@functools.lru_cache(maxsize=64)
def lint_report(flow: Flow) -> lint.Report:
    """Lint a flow once per process: flows are loaded at start-up and never change under it."""
    return lint.lint_flow(flow)


@bp.before_request
def require_operator() -> Response | None:
    """Send anyone not signed in (or whose account was removed) to the sign-in page; let only admins change things."""
    name = session.get("operator")
    if request.endpoint in OPEN:
        return None
    # One read per page: the account still exists, has not signed out since this session began, and its role.
    account = Operators(_accord().store.redis).account(name) if name else None
    if account is None or account.epoch != session.get("epoch"):
        session.pop("operator", None)
        return redirect(url_for("console.login", next=request.path if request.method == "GET" else None))
    if request.method not in csrf.SAFE and request.endpoint not in VIEWER_MAY and account.role != ADMIN:
        abort(403, description=_("Your role, %(role)s, reads the console; only an admin can do this.",
                                 role=names.role(account.role)))
    g.operator, g.role = name, account.role
    return None


@bp.errorhandler(403)
def forbidden(error: HTTPException) -> tuple[str, int]:
    """Say, in the console's own page, why a role may not do this."""
    return render_template("console/forbidden.html", reason=error.description), 403


@bp.context_processor
def sign_in_rules() -> dict[str, object]:
    return {"limit": _("%(n)s times an hour", n=SIGN_IN_LIMIT.amount), "max_failures": MAX_FAILURES}


@bp.app_template_filter("count")
def count_filter(value: int) -> str:
    return dashboard.count(value)


@bp.app_template_filter("when")
def when_filter(epoch: float, tz: ZoneInfo = TZ) -> str:
    return i18n.moment(epoch, tz)


@bp.route("/login", methods=["GET", "POST"])
def login() -> Response | tuple[str, int, dict[str, str]] | tuple[str, int] | str:
    """Show the sign-in form; sign in, within the address's throttle and the name's lock-out."""
    if request.method == "GET":
        return render_template("console/login.html", name="")
    accord = _accord()
    redis, now, address = accord.store.redis, accord.store.clock(), client_address()
    throttle: MovingWindowRateLimiter = current_app.extensions[THROTTLE]
    if not throttle.hit(SIGN_IN_LIMIT, address):
        return _throttled(throttle, address)
    name = request.form.get("name", "").strip().lower()
    operators = Operators(redis)
    attempt = operators.sign_in(name, request.form.get("password", ""))
    if not attempt.ok:
        refused = attempt.locked_for and not attempt.just_locked  # refused before any check
        audit.failed_sign_in(redis, now, address, "locked" if refused else "failed")
        if attempt.just_locked and operators.account(name) is not None:  # once an hour at most, real names only
            audit.record(redis, now, name, "sign-ins locked",
                         detail=f"{MAX_FAILURES} failed within the hour, the last from {address}")
        if attempt.locked_for:
            flash(_("Too many failed sign-ins: try again in %(wait)s.",
                    wait=dashboard.duration(attempt.locked_for + 59)), "error")
            return render_template("console/login.html", name=name), 429
        flash(_("Wrong name or password."), "error")
        return render_template("console/login.html", name=name), 401
    target = safe_target(request.args.get("next", ""))
    session.clear()  # a fresh session (and CSRF token) for the signed-in operator
    session.permanent = True
    account = operators.account(name)
    session["operator"], session["epoch"] = name, account.epoch if account else None
    if account and account.language:  # else the browser's language, as before signing in
        session["lang"] = account.language
    csrf.token()
    audit.record(redis, now, name, "sign-in", detail=f"from {address}")
    return redirect(target or url_for("console.home"))


def _throttled(throttle: MovingWindowRateLimiter, address: str) -> tuple[str, int, dict[str, str]]:
    """Refuse a sign-in from an address that used up its tries, unchecked, in the console's own page."""
    store = _accord().store
    audit.failed_sign_in(store.redis, store.clock(), address, "throttled")
    reset_at, _ = throttle.get_window_stats(SIGN_IN_LIMIT, address)  # the throttle's clock: real time
    wait = max(1, int(reset_at - time.time()))
    return (render_template("console/throttled.html", wait=dashboard.duration(wait + 59)), 429,
            {"Retry-After": str(wait)})


def safe_target(target: str, roots: tuple[str, ...] = ("/console",)) -> str | None:
    """Return a sign-in's `next=` if it is a console path of this site (or under `roots`), printable and plain;
    else None."""
    if not target or not (target.isascii() and target.isprintable()) or "\\" in target:
        return None  # a newline would split the Location header; a backslash, some browsers' host
    parts = urlsplit(target)
    if parts.scheme or parts.netloc or not any(parts.path == root or parts.path.startswith(root + "/")
                                               for root in roots):
        return None
    return target


@bp.post("/logout")
def logout() -> Response:
    """Sign out: this session and every other one of the operator's."""
    store = _accord().store
    audit.record(store.redis, store.clock(), g.operator, "sign-out")
    Operators(store.redis).end_sessions(g.operator)  # a copy of the cookie is no use any more
    session.clear()
    flash(_("Signed out."), "info")
    return redirect(url_for("console.login"))


@bp.post("/language")
def language() -> Response:
    """Show the pages in the language the operator picks, from now on and at their next sign-ins."""
    chosen = request.form.get("lang", "")
    if chosen in LANGUAGES:  # anything else changes nothing: the page comes back as it was
        session["lang"] = chosen
        Operators(_accord().store.redis).set_language(g.operator, chosen)
    back = safe_target(request.form.get("next", ""), roots=("/console", "/dev"))
    return redirect(back or url_for("console.home"))


@bp.get("/")
def home() -> str:
    """List the flows with their state at a glance, and the latest console actions."""
    accord = _accord()
    store, now = accord.store, accord.store.clock()
    flows = []
    for flow in accord.flows.values():
        stages = dict(dashboard.stages(store.funnel(flow)))
        flows.append({"flow": flow, "stages": stages, "paused": store.is_paused(flow),
                      "window": dashboard.window_view(flow, now)})
    # Client addresses, most of them not operators': for admins only (None: the section is left out).
    failed = audit.failed_sign_ins(store.redis, now)[:FAILED_ROWS] if g.role == ADMIN else None
    try:
        files: compaction.Backlog | None = compaction.backlog(store.redis)
    except RedisError:  # INFO refused, say: the rest of the page still shows
        files = None
    return render_template("console/home.html", flows=flows, audit=audit.latest(store.redis, AUDIT_ROWS),
                           failed=failed, files=files, every=f"{compaction.EVERY / 60:.0f}", tz=TZ)


@bp.get("/flows/<flow_id>")
def flow_page(flow_id: str) -> str:
    """Show one flow: funnel, answers over time, sending window, texts and cost, latest ledger events."""
    accord = _accord()
    flow = _flow(flow_id)
    store, now = accord.store, accord.store.clock()
    funnel = store.funnel(flow)
    stages = dashboard.stages(funnel)
    report = lint_report(flow)
    imported = dict(stages)["imported"]
    return render_template(
        "console/flow.html", flow=flow, funnel=charts.funnel(stages), stages=stages,
        hourly=charts.hourly(dashboard.answers_by_hour(funnel, now), flow.timezone),
        window=dashboard.window_view(flow, now), paused=store.is_paused(flow), report=report,
        history=dashboard.history(stages, store.redis.hgetall(funnel_key(flow.id))),
        round_cost=imported * report.rows[0].segments if report.rows else 0,
        costs=costs.priced(accord, flow, [(row.key, row.segments) for row in report.rows]),
        ledger=dashboard.ledger_rows(store.recent(flow.id, LEDGER_ROWS), flow.timezone), now=now)


@bp.post("/flows/<flow_id>/pause")
def pause(flow_id: str) -> Response:
    """Stop the flow's sending from the next number on, and record who did it."""
    accord, flow = _accord(), _flow(flow_id)
    accord.store.pause(flow)
    return _done(flow, "pause", _("paused"), "sending stops at the next number")


@bp.post("/flows/<flow_id>/resume")
def resume_flow(flow_id: str) -> Response:
    """Restart the flow's sending (parked and interrupted batches), and record who did it."""
    accord, flow = _accord(), _flow(flow_id)
    parked, recovered = resume(accord, flow)
    return _done(flow, "resume", _("resumed"), f"{parked} parked and {recovered} interrupted batch(es) queued again")


def _done(flow: Flow, action: str, said: str, detail: str) -> Response:
    """Record the action in the trail (its detail in English, as records are); say it in the page language."""
    store = _accord().store
    audit.record(store.redis, store.clock(), g.operator, action, flow=flow.id, detail=detail)
    flash(_("%(flow)s: %(said)s; %(detail)s.", flow=flow.id, said=said, detail=names.detail(detail)), "info")
    return redirect(url_for("console.flow_page", flow_id=flow.id))


def _flow(flow_id: str) -> Flow:
    flow = _accord().flows.get(flow_id)
    if flow is None:
        abort(404)
    return flow
