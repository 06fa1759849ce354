"""Join the pure core and the store: what happens when a voter's text arrives."""

from __future__ import annotations

from collections.abc import Sequence

from bot.flows import Flow
from bot.machine import REPLY_TRIGGERS
from bot.replies import Reply, classify
from bot.store import Outcome, Store

MAX_BODY = 1600  # Twilio's own limit; longer bodies are not SMS and are cut, not refused


def window_open(flows: Sequence[Flow], epoch: float) -> bool:
    """Say whether campaign texts may go now for every flow the message could belong to."""
    return all(flow.is_open(epoch) for flow in flows)


def handle_inbound(store: Store, flows: Sequence[Flow], *, phone: str, body: str,
                   message_sid: str) -> Outcome:
    """Classify a voter's text and apply it to the flow that number is talking to."""
    reply = classify(body, flows[0].language)
    return store.step(flows, phone, REPLY_TRIGGERS[reply], body=body[:MAX_BODY],
                      message_sid=message_sid, inbound=True,
                      window_open=window_open(flows, store.clock()))


def handle_carrier_stop(store: Store, flow: Flow, phone: str, code: str,
                        siblings: Sequence[Flow] = ()) -> Outcome:
    """Treat the provider's 'recipient unsubscribed' (21610) as the voter's objection.

    The provider blocks the whole sender, so every flow sending from it stops too.
    """
    flows = [flow, *(other for other in siblings if other.id != flow.id)]
    return store.step(flows, phone, "carrier_stop", body=f"provider error {code}", first=True)


def handle_unrouted(store: Store, flows: Sequence[Flow], *, phone: str, body: str, message_sid: str) -> None:
    """Honour an objection sent to a number no flow uses (a retired sender): stop every flow."""
    if flows and classify(body, flows[0].language) is Reply.STOP:
        store.step(flows, phone, "stop", body=body[:MAX_BODY], message_sid=message_sid, inbound=True)
