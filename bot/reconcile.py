"""Bring back texts the webhook missed (app or Redis down): list them from the provider and replay each once.

On OVHcloud, whose short code keeps a STOP list of its own, the numbers on it are recorded as
objections too (as a send refused with 21610 is), since a voter's STOP may have reached only it.

A replay is the same atomic step the webhook takes, recognised by its MessageSid, so running
reconcile twice changes nothing, and logged at the time Twilio received the text. What the step
answers is then sent, as TwiML would have sent it at the time: service texts (help, the
confirmations, a clarification) whatever the hour, since the voter is still owed them; campaign
texts only if they still fit when they go, which may be a later run's moment (the provider
throttled the first): the voter's window open, no objection, content to a consented number
(released as `content send` releases it), the request to the question it opens. Otherwise a YES
gets content with the next `content send`, and a START waits for the next round. Each answer is
claimed before it goes, so none goes twice, and is logged as sent with the provider's id (and
counted in the day's costs); the inbound entry itself records no reply, since none went with it.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from zoneinfo import ZoneInfo

from bot import Accord, states
from bot.answering import fits
from bot.conversation import MAX_BODY, handle_carrier_stop, shut_regions
from bot.flows import Flow
from bot.gateways import OPTED_OUT, SendError
from bot.machine import CAMPAIGN_TEXTS, REPLY_TRIGGERS
from bot.machine import step as machine_step
from bot.phones import E164
from bot.replies import classify
from bot.store import SID_TTL, Outcome
from bot.windows import REGIONS

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
    unsent: int = 0  # campaign texts the answers held back: shut window, objection, or a state they no longer fit
    sent: int = 0  # answers sent now
    failed: int = 0  # answers the provider refused, or whose sending is in doubt: not sent again
    objections: int = 0  # numbers on the provider's STOP list recorded as objections now
    limited: bool = False  # the limit was reached: older texts may remain


def parse_since(text: str, timezone: ZoneInfo) -> dt.datetime:
    """Read an ISO 8601 moment; a naive one is in `timezone` (the flow's)."""
    moment = dt.datetime.fromisoformat(text)
    return moment if moment.tzinfo else moment.replace(tzinfo=timezone)


def reconcile(accord: Accord, flow: Flow, since: dt.datetime, limit: int = LIMIT,
              page_size: int | None = None) -> Reconciled:
    """Replay, oldest first, the texts received on `flow`'s sender since `since` (at most `limit`)."""
    gateway = accord.gateway_for(flow)
    inbound_since = getattr(gateway, "inbound_since", None)
    if inbound_since is None:
        raise ReconcileError("reconcile needs a provider's settings: TWILIO_ACCOUNT_SID and TWILIO_AUTH_TOKEN, "
                             "or the OVH_ settings (the local outbox gateway keeps no received texts)")
    if flow.sender.startswith("MG"):
        raise ReconcileError(f"{flow.id} sends through a Messaging Service: Twilio lists received texts by the "
                             "number they reached, not by service, so reconcile cannot find them")
    if since.timestamp() < accord.store.clock() - SID_TTL:
        # Older MessageSids are forgotten: their texts would be applied a second time, after newer ones.
        raise ReconcileError(f"--since reaches back more than {SID_TTL // 86400} days, beyond what the store "
                             "remembers of processed texts; choose a later moment")
    paging = {"page_size": page_size} if page_size else {}
    messages = inbound_since(flow.sender, since, limit=limit, **paging)  # SendError when the provider fails
    flows = accord.flows_for(flow.sender)
    done = Reconciled(fetched=len(messages), limited=len(messages) >= limit)
    store = accord.store
    blacklist = getattr(gateway, "blacklist", None)
    if blacklist is not None:
        done.objections = _objections(accord, flow, blacklist())
    for message in messages:
        phone, sid = message.get("from") or "", message["sid"]
        if not E164.fullmatch(phone):
            done.skipped += 1
            continue
        # Marked before the step: a webhook retry of this very text in the milliseconds between the
        # mark and the step would still be answered twice (by its TwiML and by us).
        first = store.answer_late(sid)
        if first is None:  # the webhook had it: its TwiML answered
            done.already += 1
            continue
        body = (message.get("body") or "")[:MAX_BODY]
        trigger = REPLY_TRIGGERS[classify(body, flows[0].language)]
        now = store.clock()
        at = min(_received(message, now), now)
        # As handle_inbound does, at the time Twilio received the text, with the window as it is
        # now, when the answers go. Taken before (a reconcile cut short), the step gives back its
        # answer unchanged, and only what was never claimed is sent, if it still fits.
        outcome = store.step(flows, phone, trigger, body=body, message_sid=sid, inbound=True,
                             shut=shut_regions(flows, now), at=at, twiml=False)
        answering = next((f for f in flows if f.id == outcome.flow), None)
        if first:
            done.replayed += 1
            done.unsent += _held(answering, outcome, trigger) if answering else 0
        else:
            done.already += 1
        if answering:
            _answer(accord, answering, phone, sid, outcome.texts, done, at)
    return done


def _objections(accord: Accord, flow: Flow, listed: list[tuple[str, dt.datetime | None]]) -> int:
    """Record as objections the numbers on the provider's STOP list not yet suppressed; count them."""
    recorded = 0
    for phone, _ in listed:
        if E164.fullmatch(phone) and not accord.store.is_suppressed(flow, phone):
            handle_carrier_stop(accord.store, flow, phone, str(OPTED_OUT), accord.flows_for(flow.sender))
            recorded += 1
    return recorded


def _received(message: dict, now: float) -> float:
    """Return when Twilio received a text (its date_sent), or `now` if it does not say."""
    moment = message.get("date_sent") or message.get("date_created")
    return moment.timestamp() if isinstance(moment, dt.datetime) else now


def _held(flow: Flow, outcome: Outcome, trigger: str) -> int:
    """Count the campaign texts the step would have said with the window open, and did not say."""
    if outcome.refused:
        return 0
    owed = [flow.texts.say(say) for say in machine_step(outcome.source, trigger).says if say in CAMPAIGN_TEXTS]
    return len([text for text in owed if text not in outcome.texts])


def _answer(accord: Accord, flow: Flow, phone: str, message_sid: str, texts: tuple[str, ...],
            done: Reconciled, at: float) -> None:
    """Send the answers to the text received `at` that no run has claimed yet, each at most once, in order."""
    store = accord.store
    for index, text in enumerate(texts):
        if not store.claim_answer(message_sid, index):
            continue  # sent, or tried, by an earlier run
        content, request = text in flow.texts.content, text == flow.texts.consent_request
        now = store.clock()
        region = store.region(flow, phone)
        if content and not _release(accord, flow, phone, flow.texts.content.index(text) + 1, now, region):
            done.unsent += 1  # claimed for good: `content send` delivers it, if it ever fits
            continue
        if request and not _still_asking(accord, flow, phone, now, region, at):
            done.unsent += 1
            continue
        try:
            # A campaign text expires with the voter's window; a service text goes whatever the hour.
            provider_sid = accord.gateway_for(flow).send(
                phone, text, sender=flow.sender,
                validity_period=flow.validity(now, region) if content or request else None,
                status_callback=accord.status_url(flow))
        except SendError as error:
            store.record_failure(flow, phone, error.code, error.message)
            done.failed += 1
            if error.opted_out:
                handle_carrier_stop(store, flow, phone, str(error.code), accord.flows_for(flow.sender))
            if error.unprocessed:
                store.unclaim_answer(message_sid, index)  # certainly not sent: the next run sends it, if it fits
            else:
                for later in range(index + 1, len(texts)):  # nor will the rest: content without its thanks
                    store.claim_answer(message_sid, later)
            return
        store.record_sent(flow, phone, provider_sid, text, content=content, reply=not (content or request))
        done.sent += 1


def _release(accord: Accord, flow: Flow, phone: str, message: int, now: float, region: str) -> bool:
    """Release content `message` to the number as `content send` does, if its window is open now.

    The step set the message's bit when it said the content, and this answer was never sent (it is
    claimed only now, or was given back unsent), so the bit is reconcile's: handed back first, it
    goes to whichever comes first, this run (release.lua re-checks consent and objection) or a
    later `content send`. Never both, never twice.
    """
    accord.store.unrelease(flow, phone, message)
    return _open(flow, now, region) and accord.store.release(flow, phone, message) == "ok"


def _still_asking(accord: Accord, flow: Flow, phone: str, now: float, region: str, at: float) -> bool:
    """Say whether the consent request the text received `at` opened may go now; if not, withdraw it.

    It fits while that very question is open (not one a later START asked by TwiML) and the voter
    has not objected. Held, the number goes back to new, as a START outside the window leaves it:
    the next round asks it.
    """
    store = accord.store
    asked_at = _asked_at(accord, flow, phone)
    ours = store.state(flow, phone) == "asked" and asked_at is not None and abs(asked_at - at) < 1
    if ours and _open(flow, now, region) and not store.is_suppressed(flow, phone):
        return True
    if ours:
        store.step([flow], phone, "release", body="consent request held by reconcile")
    return False


def _open(flow: Flow, now: float, region: str) -> bool:
    """Say whether campaign texts may go now to a voter of `region`, with MIN_VALIDITY of the window left (an
    unknown region: no)."""
    return region in REGIONS and fits(flow.validity(now, region))


def _asked_at(accord: Accord, flow: Flow, phone: str) -> int | None:
    """Return when the number's open question was asked, from its record (None without a readable one)."""
    record = accord.store.redis.hget(*states.slot(flow.id, phone))
    try:
        return states.decode(record)[1] if record else None
    except states.StateRecordError:
        return None
