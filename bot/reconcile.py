"""Bring back texts the webhook missed (app or Redis down): list them from Twilio and replay each once.

A replay is the same atomic step the webhook takes, recognised by its MessageSid, so running
reconcile twice changes nothing. What the step would have answered is not sent: the voter wrote
hours ago. The replay runs as if the sending window were shut, so no campaign text is marked as
gone with it: a YES gets content with the next `content send`, a START waits for the next round.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from zoneinfo import ZoneInfo

from bot import Accord
from bot.conversation import MAX_BODY
from bot.flows import Flow
from bot.keys import sid_key
from bot.machine import REPLY_TRIGGERS
from bot.phones import E164
from bot.replies import classify
from bot.store import SID_TTL

LIMIT = 10_000


class ReconcileError(Exception):
    """Reconciling is impossible with these settings; the message says what to set."""


@dataclass
class Reconciled:
    """What a reconcile found and did."""

    fetched: int = 0
    replayed: int = 0
    already: int = 0
    skipped: int = 0
    unsent: int = 0  # answers the bot would have given at the time, not sent now
    limited: bool = False  # the limit was reached: older texts may remain


def parse_since(text: str, timezone: ZoneInfo) -> dt.datetime:
    """Read an ISO 8601 moment; a naive one is in `timezone` (the flow's)."""
    moment = dt.datetime.fromisoformat(text)
    return moment if moment.tzinfo else moment.replace(tzinfo=timezone)


def reconcile(accord: Accord, flow: Flow, since: dt.datetime, limit: int = LIMIT,
              page_size: int | None = None) -> Reconciled:
    """Replay, oldest first, the texts received on `flow`'s sender since `since` (at most `limit`)."""
    inbound_since = getattr(accord.gateway, "inbound_since", None)
    if inbound_since is None:
        raise ReconcileError("reconcile needs Twilio settings: TWILIO_ACCOUNT_SID and TWILIO_AUTH_TOKEN "
                             "(the local outbox gateway keeps no received texts)")
    if flow.sender.startswith("MG"):
        raise ReconcileError(f"{flow.id} sends through a Messaging Service: Twilio lists received texts by the "
                             "number they reached, not by service, so reconcile cannot find them")
    if since.timestamp() < accord.store.clock() - SID_TTL:
        # Older MessageSids are forgotten: their texts would be applied a second time, after newer ones.
        raise ReconcileError(f"--since reaches back more than {SID_TTL // 86400} days, beyond what the store "
                             "remembers of processed texts; choose a later moment")
    paging = {"page_size": page_size} if page_size else {}
    messages = inbound_since(flow.sender, since, limit=limit, **paging)  # SendError when Twilio fails
    flows = accord.flows_for(flow.sender)
    done = Reconciled(fetched=len(messages), limited=len(messages) >= limit)
    store = accord.store
    for message in messages:
        phone, sid = message.get("from") or "", message["sid"]
        if not E164.fullmatch(phone):
            done.skipped += 1
            continue
        if store.redis.exists(sid_key(sid)):
            done.already += 1
            continue
        body = (message.get("body") or "")[:MAX_BODY]
        # As handle_inbound does, but with the window shut: nothing goes out now, so the step must
        # not record content as delivered (its bitmap would then skip these voters for good).
        outcome = store.step(flows, phone, REPLY_TRIGGERS[classify(body, flows[0].language)], body=body,
                             message_sid=sid, inbound=True, window_open=False)
        done.replayed += 1
        done.unsent += len(outcome.texts)
    return done
