"""The operators' console: sign-in, each flow's funnel, window, texts and ledger, pause and resume."""

from __future__ import annotations

import datetime as dt
import functools
from zoneinfo import ZoneInfo

from flask import Blueprint, abort, current_app, flash, g, redirect, render_template, request, session, url_for
from werkzeug.wrappers import Response

from bot import Accord, audit, lint
from bot.flows import Flow
from bot.operators import Operators
from bot.web import charts, csrf, dashboard
from bot.workers import resume

bp = Blueprint("console", __name__, url_prefix="/console")
TZ = ZoneInfo("Europe/Paris")  # the console's clock for entries no flow owns (the audit trail)
OPEN = frozenset({"console.login"})  # the only page shown before signing in
LEDGER_ROWS = 20
AUDIT_ROWS = 50


def _accord() -> Accord:
    return current_app.extensions["accord"]


@functools.lru_cache(maxsize=64)
def lint_report(flow: Flow) -> lint.Report:
    """Lint a flow once per process: flows are loaded at start-up and never change under it."""
    return lint.lint_flow(flow)


@bp.before_request
def require_operator() -> Response | None:
    """Send anyone not signed in (or whose account was removed) to the sign-in page."""
    name = session.get("operator")
    if request.endpoint in OPEN:
        return None
    # One read per page: the account still exists and has not signed out since this session began.
    if not name or Operators(_accord().store.redis).epoch(name) != session.get("epoch"):
        session.pop("operator", None)
        return redirect(url_for("console.login", next=request.path if request.method == "GET" else None))
    g.operator = name
    return None


@bp.app_template_filter("count")
def count_filter(value: int) -> str:
    return dashboard.count(value)


@bp.app_template_filter("when")
def when_filter(epoch: float, tz: ZoneInfo = TZ) -> str:
    return dt.datetime.fromtimestamp(epoch, tz).strftime("%a %d %b %Y %H:%M %Z")


@bp.route("/login", methods=["GET", "POST"])
def login() -> Response | tuple[str, int] | str:
    """Show the sign-in form; sign in, counting failures towards a lock-out."""
    if request.method == "GET":
        return render_template("console/login.html", name="")
    accord = _accord()
    name = request.form.get("name", "").strip().lower()
    operators = Operators(accord.store.redis)
    attempt = operators.sign_in(name, request.form.get("password", ""))
    now = accord.store.clock()
    if not attempt.ok:
        detail = "locked after repeated failures" if attempt.just_locked else (
            "refused: account locked" if attempt.locked_for else "wrong name or password")
        audit.record(accord.store.redis, now, name[:40], "sign-in failed", detail=detail)
        if attempt.locked_for:
            flash(f"Too many failed sign-ins: try again in {dashboard.duration(attempt.locked_for + 59)}.", "error")
            return render_template("console/login.html", name=name), 429
        flash("Wrong name or password.", "error")
        return render_template("console/login.html", name=name), 401
    target = request.args.get("next", "")
    session.clear()  # a fresh session (and CSRF token) for the signed-in operator
    session.permanent = True
    session["operator"], session["epoch"] = name, operators.epoch(name)
    csrf.token()
    audit.record(accord.store.redis, now, name, "sign-in")
    safe = target.startswith("/console") and not target.startswith("//")
    return redirect(target if safe else url_for("console.home"))


@bp.post("/logout")
def logout() -> Response:
    """Sign out: this session and every other one of the operator's."""
    store = _accord().store
    audit.record(store.redis, store.clock(), g.operator, "sign-out")
    Operators(store.redis).end_sessions(g.operator)  # a copy of the cookie is no use any more
    session.clear()
    flash("Signed out.", "info")
    return redirect(url_for("console.login"))


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
    return render_template("console/home.html", flows=flows, audit=audit.latest(store.redis, AUDIT_ROWS),
                           tz=TZ)


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
        round_cost=imported * report.rows[0].segments if report.rows else 0,
        ledger=dashboard.ledger_rows(store.recent(flow.id, LEDGER_ROWS), flow.timezone), now=now)


@bp.post("/flows/<flow_id>/pause")
def pause(flow_id: str) -> Response:
    """Stop the flow's sending from the next number on, and record who did it."""
    accord, flow = _accord(), _flow(flow_id)
    accord.store.pause(flow)
    return _done(flow, "pause", "paused", "sending stops at the next number")


@bp.post("/flows/<flow_id>/resume")
def resume_flow(flow_id: str) -> Response:
    """Restart the flow's sending (parked and interrupted batches), and record who did it."""
    accord, flow = _accord(), _flow(flow_id)
    parked, recovered = resume(accord, flow)
    return _done(flow, "resume", "resumed", f"{parked} parked and {recovered} interrupted batch(es) queued again")


def _done(flow: Flow, action: str, said: str, detail: str) -> Response:
    store = _accord().store
    audit.record(store.redis, store.clock(), g.operator, action, flow=flow.id, detail=detail)
    flash(f"{flow.id}: {said}; {detail}.", "info")
    return redirect(url_for("console.flow_page", flow_id=flow.id))


def _flow(flow_id: str) -> Flow:
    flow = _accord().flows.get(flow_id)
    if flow is None:
        abort(404)
    return flow
