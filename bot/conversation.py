"""Join the pure core and the store: what happens when a voter's text arrives."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import replace
from functools import lru_cache

from bot import voter_access
from bot.flows import MIN_VALIDITY, Flow
from bot.machine import REPLY_TRIGGERS
from bot.replies import Reply, classify
from bot.store import Outcome, Store
from bot.windows import REGIONS

MAX_BODY = 1600  # Twilio's own limit; longer bodies are not SMS and are cut, not refused


def shut_regions(flows: Sequence[Flow], epoch: float) -> frozenset[str]:
    """Name the calendar regions where campaign texts may not go now for some flow the message could belong to.

    The voter's region is kept beside their state, so the store picks the answer inside its one
    script: a YES on Good Friday in Alsace is confirmed without content, as the workers would hold it.
    A window shutting within MIN_VALIDITY counts as shut, as it does for the workers: an answer's
    content goes with a minute of the window left, whatever keeps it a few seconds on the way.
    """
    return _shut_in_minute(tuple(flows), int(epoch // 60))


@lru_cache(maxsize=256)
def _shut_in_minute(flows: tuple[Flow, ...], minute: int) -> frozenset[str]:
    # Every limit of a window falls on a whole local minute (see Flow.is_open): open now and a minute
    # on is open for the whole minute between, which leaves at least MIN_VALIDITY before it shuts.
    return frozenset(region for region in REGIONS
                     if not all(flow.is_open(minute * 60, region) and flow.is_open(minute * 60 + MIN_VALIDITY, region)
                                for flow in flows))


def handle_inbound(store: Store, flows: Sequence[Flow], *, phone: str, body: str,
                   message_sid: str) -> Outcome:
    """Classify a voter's text and apply it to the flow that number is talking to.

    A rights request moves nothing (the ledger records the text); its answer is a one-time link to
    the voter's own page, made here so that every gateway's inbound path gives it.
    """
    reply = classify(body, flows[0].language)
    outcome = store.step(flows, phone, REPLY_TRIGGERS[reply], body=body[:MAX_BODY],
                         message_sid=message_sid, inbound=True, shut=shut_regions(flows, store.clock()))
    # Not to a text processed before: whoever replays a captured request would get the voter's page.
    if reply is Reply.DATA and not outcome.refused and not outcome.replayed:
        link = voter_access.answer(store, flows, phone=phone, message_sid=message_sid)
        if link:
            return replace(outcome, texts=(*outcome.texts, link))
    return outcome


def handle_carrier_stop(store: Store, flow: Flow, phone: str, code: str,
                        siblings: Sequence[Flow] = ()) -> Outcome:
    """Treat the provider's 'recipient unsubscribed' (21610) as the voter's objection.

    The provider blocks the whole sender, so every flow sending from it stops too. A number whose
    objection holds on each of them and that none holds (erased, or reduced to its HMAC by the
    purge) is left as it is: recording the STOP would store the number again, and changes nothing.
    """
    flows = [flow, *(other for other in siblings if other.id != flow.id)]
    if all(store.is_suppressed(each, phone) and store.state(each, phone) == "new" for each in flows):
        return Outcome(flow.id, "new", "new")
    return store.step(flows, phone, "carrier_stop", body=f"provider error {code}", first=True)


def handle_unrouted(store: Store, flows: Sequence[Flow], *, phone: str, body: str, message_sid: str) -> None:
    """Honour an objection sent to a number no flow uses (a retired sender): stop every flow."""
    if flows and classify(body, flows[0].language) is Reply.STOP:
        store.step(flows, phone, "stop", body=body[:MAX_BODY], message_sid=message_sid, inbound=True)
