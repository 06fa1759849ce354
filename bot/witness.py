"""The provider as witness: every claim is sent exactly once, not just at most once.

A worker claims a number (or releases content to it) before sending, so nothing goes twice, and
the claim stays in flight until its outcome is recorded (bot/keys.py's in_flight_key). A worker
killed in between, a timeout or a 5xx, Redis away when the text went out: the entry stays. Once
older than any send can take (GRACE), a sweep asks the provider which texts it took for the
number since the claim. Found: it is recorded with the provider's sid, the ledger's `sent` entry
saying it was found there. Not found: the claim is given back and the number goes again on a batch
of its own, through the same claim, inside its window. A provider that cannot say leaves the entry
for the next sweep. Workers sweep every few minutes (bot/workers.py), and `round resume` once.
"""

from __future__ import annotations

import datetime as dt
import logging
import unicodedata
from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass

from redis.client import Pipeline
from rq import Queue

from bot import Accord
from bot.batches import Batches
from bot.flows import Flow
from bot.gateways import SendError
from bot.sending import queue_for, send_content, send_requests

# Seconds a claim may be in flight before the provider is asked: longer than any send takes (four
# 10 s timeouts and the retries between them, then up to a minute waiting for Redis to record it).
GRACE = 300.0
SKEW = 120.0  # seconds the provider's clock may run behind ours, looking for what it took since a claim
AGAIN = "again|"  # an entry given back whose number is not on a batch again yet (see step.lua)
FOUND, AGAIN_SENT, MOVED_ON, UNKNOWN = "found at the provider", "sent again", "moved on", "provider did not say"
log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Claim:
    """A claim (message 0) or a release of content `message` whose send is in flight."""

    phone: str
    message: int
    entry: str  # as stored: "claimed at|region|import", "again|" before it once given back
    at: float
    region: str
    origin: str
    again: bool


def claim_of(phone: str, message: int, entry: str) -> Claim:
    """Read an in-flight entry (bot/keys.py's in_flight_key)."""
    again = entry.startswith(AGAIN)
    at, region, origin = entry.removeprefix(AGAIN).split("|", 2)
    return Claim(phone, message, entry, float(at), region, origin, again)


def same_text(body: str, text: str) -> bool:
    """Say whether the provider's `body` is `text`: its letters and digits, whatever accents, case and
    punctuation a provider's encoding changes, or a notice it appends."""
    wanted = _letters(text)
    return bool(wanted) and wanted in _letters(body)


def _letters(text: str) -> str:
    return "".join(c for c in unicodedata.normalize("NFKD", text.casefold()) if c.isalnum())


def sweep(accord: Accord, flows: Iterable[Flow] | None = None, *, grace: float = GRACE) -> Counter[str]:
    """Settle each claim in flight for longer than `grace` seconds; return how many went each way."""
    done: Counter[str] = Counter()
    now = accord.store.clock()
    for flow in accord.flows.values() if flows is None else flows:
        for phone, message, entry in accord.store.in_flight(flow):
            claim = claim_of(phone, message, entry)
            if claim.again or now - claim.at >= grace:
                done[settle(accord, flow, claim)] += 1
    if done:
        log.info("claims in flight settled with the provider: %s", dict(done))
    return done


def settle(accord: Accord, flow: Flow, claim: Claim) -> str:
    """Record the claim's text as sent if the provider took it, else give the claim back and queue the
    number again; say which."""
    if claim.again:  # given back by a sweep that stopped before queueing it
        return AGAIN_SENT if _queue_again(accord, flow, claim) else MOVED_ON
    store, texts = accord.store, _texts(accord, flow, claim)
    if not texts:  # content the flow no longer has, nor the ledger: a person looks at it
        log.error("flow %s: a content message in flight is no longer in the flow; left in flight", flow.id)
        return UNKNOWN
    since = dt.datetime.fromtimestamp(claim.at - SKEW, dt.UTC)
    try:
        taken = accord.gateway_for(flow).sent_to(claim.phone, flow.sender, since)
    except SendError as error:  # the provider cannot say now: the next sweep asks again
        log.warning("flow %s: the provider did not say what it sent (%s); asking again next time", flow.id, error)
        return UNKNOWN
    # A body the provider no longer shows (redacted) may be this text: never send it twice.
    found = [(sid, when) for sid, when, body in taken if not body or any(same_text(body, t) for t in texts)]
    if found:
        sid, when = found[0]
        store.record_sent(flow, claim.phone, sid, texts[0], content=bool(claim.message), in_flight=claim.message,
                          found=when.astimezone(dt.UTC).isoformat())
        return FOUND
    why = f"not found at the provider {round(store.clock() - claim.at)} s after its claim"
    if claim.message:
        given = store.give_back(flow, claim.phone, claim.message, why, in_flight=claim.entry)
    else:
        given = store.step([flow], claim.phone, "release", body=why, in_flight=claim.entry).changed
    if not given:  # claimed again, answered, erased meanwhile: nothing to send again
        return MOVED_ON
    again = Claim(claim.phone, claim.message, AGAIN + claim.entry, claim.at, claim.region, claim.origin, True)
    return AGAIN_SENT if _queue_again(accord, flow, again) else MOVED_ON


def _texts(accord: Accord, flow: Flow, claim: Claim) -> list[str]:
    """Return the text the claim sends, as its ledger entry holds it, then as the flow says it now."""
    def claimed(event: str) -> bool:  # "ask:IMPORT", or "content:N"
        return event.partition(":")[0] == "ask" if claim.message == 0 else event == f"content:{claim.message}"

    logged = [entry["text"] for entry in accord.store.person(claim.phone).get(flow.id, [])
              if claimed(entry.get("event", ""))]
    contents = flow.texts.content
    now = [flow.texts.consent_request] if claim.message == 0 else contents[claim.message - 1:claim.message]
    return [*logged[-1:], *now]


def _queue_again(accord: Accord, flow: Flow, claim: Claim) -> bool:
    """Queue the number of a claim given back, as a batch of its own, once."""
    item = f"{claim.phone}/{claim.region}" if claim.region else claim.phone

    def queue(pipe: Pipeline) -> None:
        batch = Batches(accord.store).keep(flow, [item], pipe, claim.origin)
        function, args = ((send_content, (flow.id, claim.message, batch)) if claim.message
                          else (send_requests, (flow.id, batch)))
        queue_for(accord).enqueue_many([Queue.prepare_data(function, args, timeout=300, result_ttl=86400,
                                                           failure_ttl=30 * 86400)], pipeline=pipe)

    return accord.store.queue_in_flight(flow, claim.phone, claim.message, claim.entry, queue)
