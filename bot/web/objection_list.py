"""The objection list, downloaded from the console by an admin: HMACs, or numbers where Accord still holds them.

A controller's other tools (a mailing tool, a phoning tool, another SMS provider) must honour
the objections voters made here. The list itself keeps no number, only each number's keyed HMAC
(bot/pseudonyms.py): HMAC-SHA256 of the number in E.164, under SUPPRESSION_KEY, its first 32 hex
digits. A tool given the same key computes the HMAC of its own numbers and drops those on the
list, and the file names no one to whoever reads it without the key. That is the first choice.
The second gives numbers, but only those Accord truthfully holds: an erased or purged number
left nothing but its HMAC, so its line keeps the HMAC and a blank number, and the count says how
many; a tool fed numbers only would miss them.

Admins only (numbers or HMACs of people who objected are personal data): the console refuses a
viewer's POST (console.require_operator). Each export goes to the access log under the
operator's name, with the controller, the choice and the count, and, as every export does, to
the ledger of each of the controller's flows (C.12). The file goes to the admin's browser and
nowhere on the server, so no export file is recorded for retention (bot/written.py): none stays.
"""

from __future__ import annotations

import csv
import datetime as dt
import io
import json
import re
from collections.abc import Iterator

from flask import current_app, flash, g, redirect, render_template, request, url_for
from flask_babel import gettext as _
from werkzeug.wrappers import Response

from bot import Accord, audit, rights
from bot.keys import suppression_key
from bot.web.console import bp

KINDS = ("hmac", "numbers")
ACTION = "objection list export (console)"  # the access log's action
COLUMNS = {"hmac": ("hmac", "objected_at", "lifted_for"), "numbers": ("phone", "hmac", "objected_at", "lifted_for")}
UNSAFE = re.compile(r"[^A-Za-z0-9_-]")  # kept out of a download's file name


@bp.get("/objections")
def objections() -> str:
    """Show each controller's objection list, its size, and (for admins) the export form."""
    accord = _accord()
    redis = accord.store.redis
    counts = {controller: redis.hlen(suppression_key(controller)) for controller in _controllers(accord)}
    return render_template("console/objections.html", counts=counts, names=_names(accord))


@bp.post("/objections")
def export_objections() -> Response:
    """Send a controller's objection list as CSV, HMACs or numbers; record who took it and what."""
    accord = _accord()
    controller, kind = request.form.get("controller", ""), request.form.get("kind", "")
    if controller not in _controllers(accord) or kind not in KINDS:
        flash(_("Choose a controller and what the file holds."), "error")
        return redirect(url_for("console.objections"))
    store = accord.store
    listed = rights.objection_list(accord, controller, numbers=kind == "numbers")
    numbers = sum(bool(item.phone) for item in listed)
    detail = f"{controller}: {kind}, {len(listed)} line(s)" + (f", {numbers} with a number" if kind == "numbers"
                                                                  else "")
    now = store.clock()
    audit.access(store.redis, now, g.operator, ACTION, detail=detail)
    for flow in accord.flows.values():
        if flow.controller_id == controller:
            store.record_export(flow, json.dumps({"operator": g.operator, "scope": "objection list",
                                                  "format": f"csv, {kind}", "count": len(listed),
                                                  "output": "console download"}, ensure_ascii=False))
    name = f"objections-{UNSAFE.sub('-', controller)}-{kind}-{dt.datetime.fromtimestamp(now, dt.UTC):%Y%m%d}.csv"
    return Response(write_csv(listed, kind), mimetype="text/csv",
                    headers={"Content-Disposition": f'attachment; filename="{name}"'})


def write_csv(listed: list[rights.Objection], kind: str) -> Iterator[str]:
    """Write the list as CSV, a line at a time: the HMAC (and the number, blank where none is held),
    when, and the senders a START lifted it for."""
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")

    def line(row: tuple[str, ...]) -> str:
        writer.writerow(row)
        written = out.getvalue()
        out.seek(0)
        out.truncate()
        return written

    yield line(COLUMNS[kind])
    for item in listed:
        at = dt.datetime.fromtimestamp(item.since, dt.UTC).isoformat(timespec="seconds") if item.since else ""
        row = (item.digest, at, " ".join(item.lifted_for))
        yield line((item.phone, *row) if kind == "numbers" else row)


def _controllers(accord: Accord) -> list[str]:
    """Every controller with a flow loaded or a list in Redis (a flow removed leaves its list)."""
    return sorted({flow.controller_id for flow in accord.flows.values()} | set(accord.store.objection_lists()))


def _names(accord: Accord) -> dict[str, str]:
    return {flow.controller_id: flow.controller for flow in accord.flows.values()}


def _accord() -> Accord:
    return current_app.extensions["accord"]
