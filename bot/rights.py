"""Data-subject rights and retention: show what is held on a number, erase it, purge what is due."""

from __future__ import annotations

import datetime as dt
from collections import Counter

from bot import Accord
from bot.flows import Flow

RETENTION_DAYS = 60  # non-responders and NO answers, from the request (COMPLIANCE.md D.14)


def show(accord: Accord, phone: str) -> dict:
    """Gather everything held on a number, with where it came from (GDPR art. 15)."""
    store = accord.store
    held = store.person(phone)
    flows = {}
    for flow in accord.flows.values():
        state = store.state(flow, phone)
        if state == "new" and flow.id not in held and not store.is_suppressed(flow, phone):
            continue
        flows[flow.id] = {
            "controller": flow.controller, "purpose": flow.purpose, "source": flow.source,
            "notice": flow.notice_url, "state": state, "objected": store.is_suppressed(flow, phone),
            "import": store.round_settings(flow).get("origin", ""), "ledger": held.get(flow.id, []),
        }
    return {"phone": phone, "flows": flows}


def erase(accord: Accord, phone: str) -> dict[str, int]:
    """Erase a number everywhere, keeping only the suppression HMAC so the objection holds (art. 17, 21)."""
    return accord.store.erase(list(accord.flows.values()), phone, whole=True, objection=True)


def due(flow: Flow, state: str, asked_at: float, touched: float, now: float) -> str | None:
    """Say why a number's data in a flow must go now, or None (COMPLIANCE.md D.14)."""
    if state == "opted_out":
        return "opted out: reduced to the suppression HMAC"
    if state == "consented":
        end = flow.end_date
        if end and dt.datetime.fromtimestamp(now, flow.timezone).date() > end:
            return "consented: the flow's end date has passed"
        return None
    since = asked_at if state in ("asked", "clarified", "expired", "declined") else touched
    if now - since >= RETENTION_DAYS * 86400:
        return f"{'declined' if state == 'declined' else 'no answer'}: {RETENTION_DAYS} days after the request"
    return None


def purge(accord: Accord, *, dry_run: bool = False) -> Counter[str]:
    """Apply the retention rules to every flow; return what was (or would be) removed, by reason."""
    store, removed = accord.store, Counter()
    now = store.clock()
    for flow in accord.flows.values():
        for phone, state, asked_at, touched in list(store.records(flow)):
            reason = due(flow, state, asked_at, touched, now)
            if reason:
                removed[f"{flow.id}: {reason}"] += 1
                if not dry_run:
                    store.erase([flow], phone, whole=False, objection=state == "opted_out")
    return removed
