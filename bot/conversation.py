"""Join the pure core and the store: what happens when a voter's text arrives."""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence

from bot.flows import Flow
from bot.machine import REPLY_TRIGGERS
from bot.replies import classify
from bot.store import Outcome, Store
from bot.windows import sending_window

MAX_BODY = 1600  # Twilio's own limit; longer bodies are not SMS and are cut, not refused


def window_open(flows: Sequence[Flow], epoch: float) -> bool:
    """Say whether campaign texts may go now for every flow the message could belong to."""
    now = dt.datetime.fromtimestamp(epoch, dt.UTC)
    return all(sending_window(now, tz=flow.timezone, poll_date=flow.poll_date,
                              hours=flow.sending_hours).open for flow in flows)


def handle_inbound(store: Store, flows: Sequence[Flow], *, phone: str, body: str,
                   message_sid: str) -> Outcome:
    """Classify a voter's text and apply it to the flow that number is talking to."""
    reply = classify(body, flows[0].language)
    return store.step(flows, phone, REPLY_TRIGGERS[reply], body=body[:MAX_BODY],
                      message_sid=message_sid, inbound=True,
                      window_open=window_open(flows, store.clock()))


def handle_carrier_stop(store: Store, flow: Flow, phone: str, code: str) -> Outcome:
    """Treat the provider's 'recipient unsubscribed' (21610) as the voter's objection."""
    return store.step([flow], phone, "carrier_stop", body=f"provider error {code}")
