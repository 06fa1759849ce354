"""Bring back texts the webhook missed (app or Redis down): list them from Twilio and replay each once.

A replay is the same atomic step the webhook takes, recognised by its MessageSid, so running
reconcile twice changes nothing, and logged at the time Twilio received the text. What the step
answers is then sent, as TwiML would have sent it at the time: service texts (help, the
confirmations, a clarification) whatever the hour, since the voter is still owed them; campaign
texts only where the voter's window is open now. Otherwise a YES gets content with the next
`content send`, and a START waits for the next round. Each answer is claimed before it goes, so
none goes twice, and is logged as sent with the provider's id (and counted in the day's costs);
the inbound entry itself records no reply, since none went with it.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from zoneinfo import ZoneInfo

from bot import Accord, states
from bot.conversation import MAX_BODY, handle_carrier_stop, shut_regions
from bot.flows import Flow
from bot.gateway import SendError
from bot.machine import CAMPAIGN_TEXTS, REPLY_TRIGGERS
from bot.machine import step as machine_step
from bot.phones import E164
from bot.replies import classify
from bot.sending import validity
from bot.store import SID_TTL, Outcome

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
    unsent: int = 0  # campaign texts the answers held back, the voter's window being shut now
    sent: int = 0  # answers sent now
    failed: int = 0  # answers the provider refused, or whose sending is in doubt: not sent again
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
        # Marked before the step: a webhook retry of this very text in the milliseconds between the
        # mark and the step would still be answered twice (by its TwiML and by us).
        first = store.answer_late(sid)
        if first is None:  # the webhook had it: its TwiML answered
            done.already += 1
            continue
        body = (message.get("body") or "")[:MAX_BODY]
        trigger = REPLY_TRIGGERS[classify(body, flows[0].language)]
        now = store.clock()
        # As handle_inbound does, at the time Twilio received the text, with the window as it is
        # now, when the answers go. Taken before (a reconcile cut short), the step gives back its
        # answer unchanged, and only what was never claimed is sent.
        outcome = store.step(flows, phone, trigger, body=body, message_sid=sid, inbound=True,
                             shut=shut_regions(flows, now), at=min(_received(message, now), now), twiml=False)
        answering = next((f for f in flows if f.id == outcome.flow), None)
        if first:
            done.replayed += 1
            done.unsent += _held(answering, outcome, trigger) if answering else 0
        else:
            done.already += 1
        if answering:
            _answer(accord, answering, phone, sid, outcome.texts, done)
    return done


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
            done: Reconciled) -> None:
    """Send the answers to one text that no run has claimed yet, each at most once, in order."""
    store = accord.store
    public = accord.config.public_url
    for index, text in enumerate(texts):
        if not store.claim_answer(message_sid, index):
            continue  # sent, or tried, by an earlier run
        content, request = text in flow.texts.content, text == flow.texts.consent_request
        now = store.clock()
        try:
            # A campaign text expires with the voter's window; a service text goes whatever the hour.
            provider_sid = accord.gateway.send(
                phone, text, sender=flow.sender,
                validity_period=max(1, validity(flow, now, _region(accord, flow, phone))) if content or request
                else None,
                status_callback=f"{public}/sms/status" if public else None)
        except SendError as error:
            store.record_failure(flow, phone, error.code, error.message)
            done.failed += 1
            if error.opted_out:
                handle_carrier_stop(store, flow, phone, str(error.code), accord.flows_for(flow.sender))
            if error.unprocessed:
                store.unclaim_answer(message_sid, index)  # certainly not sent: the next run sends it
            else:
                for later in range(index + 1, len(texts)):  # nor will the rest: content without its thanks
                    store.claim_answer(message_sid, later)
            return
        store.record_sent(flow, phone, provider_sid, text, content=content, reply=not (content or request))
        done.sent += 1


def _region(accord: Accord, flow: Flow, phone: str) -> str:
    """Return the voter's calendar region, kept beside their state in the flow."""
    record = accord.store.redis.hget(*states.slot(flow.id, phone))
    try:
        return states.region(record) if record else ""
    except states.StateRecordError:  # damaged since the step read it: the national calendar
        return ""
