"""OVHcloud's callbacks: voters' texts and delivery receipts, called with GET query parameters.

OVHcloud signs nothing. A callback proves itself with the unguessable secret in its URL path
(any of OVH_CALLBACK_SECRET's, so that a secret can be rotated), and, if OVH_CALLBACK_NETWORKS is
set, by coming from one of those networks (the address the app sees: behind a proxy, the proxy's).
Anything else is answered 403 and changes nothing.

A voter's text goes through conversation.handle_inbound as Twilio's does, and its ledger entry
records the answer as a TwiML answer's is. OVHcloud has no TwiML: each answer is then sent through
OVHcloud, claimed first (per text and index), so that a callback OVHcloud calls twice answers once.
"""

from __future__ import annotations

import hmac
import ipaddress
import logging

import redis
from flask import Blueprint, Response, abort, current_app, request

from bot import Accord
from bot.answering import fits, time_left
from bot.config import OvhSettings
from bot.conversation import handle_carrier_stop, handle_inbound, handle_unrouted
from bot.flows import Flow
from bot.gateways import OPTED_OUT, SendError
from bot.gateways.ovh import e164, sid_of
from bot.phones import E164
from bot.sending import enqueue

log = logging.getLogger(__name__)
bp = Blueprint("ovh", __name__, url_prefix="/sms/ovh/<secret>")
STORE_DOWN = (redis.ConnectionError, redis.TimeoutError)
# OVHcloud's receipt statuses (`dlr`) on Twilio's ladder (bot/store.py STATUS_RANK): delivered,
# not delivered, waiting at the operator, handed to the operator, refused by the operator.
STATUSES = {"1": "delivered", "2": "undelivered", "4": "sent", "8": "sent", "16": "failed"}
# A receipt refused because the receiver is on the account's STOP list says so in its description.
STOP_LIST = ("blacklist", "stop list", "liste stop")


def allowed(settings: OvhSettings | None, secret: str, address: str | None) -> bool:
    """Say whether a callback with this secret in its path, from this address, is OVHcloud's."""
    if settings is None:
        return False
    # Every secret compared, each in constant time: which one matched says nothing by its timing.
    matches = [hmac.compare_digest(secret.encode(), known.encode()) for known in settings.callback_secrets]
    if not any(matches):
        return False
    if not settings.callback_networks:
        return True
    try:
        ip = ipaddress.ip_address(address or "")
    except ValueError:
        return False
    return any(ip in network for network in settings.callback_networks)


@bp.before_request
def check_origin() -> None:
    """Refuse, with 403 and no change, a callback without a known secret or from elsewhere."""
    accord: Accord = current_app.extensions["accord"]
    secret = (request.view_args or {}).get("secret", "")
    if not allowed(accord.config.ovh, secret, request.remote_addr):
        log.warning("refused an OVHcloud callback with a wrong secret or from %s", request.remote_addr)
        abort(403)


@bp.route("/inbound/<sender>", methods=["GET", "POST"])
def inbound(secret: str, sender: str) -> Response:
    """Apply a voter's text to the flows of `sender` (the short code or number it reached), then answer it."""
    accord: Accord = current_app.extensions["accord"]
    values = request.values
    phone = e164(values.get("sender") or values.get("senderid") or "")
    ovh_id, body = values.get("id", ""), values.get("message", "")
    if not E164.fullmatch(phone) or not ovh_id.isdigit() or len(ovh_id) > 20:
        return Response("bad callback", status=400, mimetype="text/plain")
    sid = sid_of(int(ovh_id))  # "0042" is text 42, as the API names it: one text, one id
    flows = accord.flows_for(sender)
    try:
        if not flows:
            log.warning("inbound text to %s, which no flow sends from", sender)
            handle_unrouted(accord.store, list(accord.flows.values()), phone=phone, body=body, message_sid=sid)
            return Response(status=204)
        outcome = handle_inbound(accord.store, flows, phone=phone, body=body, message_sid=sid)
        flow = next((f for f in flows if f.id == outcome.flow), None)
        if flow is not None:
            answer(accord, flow, phone, sid, outcome.texts, replayed=outcome.replayed)
    except STORE_DOWN:
        log.exception("store unavailable; answering 503 so the text is retried")
        return Response("store unavailable", status=503, mimetype="text/plain")
    return Response(status=204)


def answer(accord: Accord, flow: Flow, phone: str, message_sid: str, texts: tuple[str, ...], *,
           replayed: bool = False) -> None:
    """Send the answers the step gave, each at most once whatever the callback's replays.

    A campaign text goes only with MIN_VALIDITY of the voter's window left when it goes (bot/answering.py),
    not only when the step chose it: a callback called again hours on, for an answer OVHcloud was too
    busy to take then, sends its service texts alone, and its content goes back to the next `content
    send`. A START's consent request that cannot go now (the window, or OVHcloud too busy) goes to
    the workers, who ask the number in its window. Neither goes once the voter answered or objected since,
    nor, called again (`replayed`) after an objection, any text but the objection's own confirmation.
    """
    store = accord.store
    for index, text in enumerate(texts):
        if not store.claim_answer(message_sid, index):
            continue  # sent, or tried, when this callback first came
        request, content = text == flow.texts.consent_request, text in flow.texts.content
        if request and not (store.still_ours(flow, phone) and store.opened_by(flow, phone, message_sid)):
            continue  # its question answered, objected to, or asked anew since this callback first came
        if content and not store.still_ours(flow, phone, 1):
            store.unrelease(flow, phone, flow.texts.content.index(text) + 1)  # for a later consent, if any
            continue  # the voter declined, or objected, since this callback first came
        if replayed and text != flow.texts.stopped and store.is_suppressed(flow, phone):
            continue  # a service text too: after a STOP, nothing but its confirmation
        seconds = time_left(store, flow, phone, text)
        if not fits(seconds):
            # Never sent (its answer was unclaimed until now): nothing of it may be lost, nor go twice.
            log.warning("flow %s: an answer to text %s held, the voter's window shut since it was chosen",
                        flow.id, message_sid)
            if request:
                _ask_later(accord, flow, phone, "consent request held: the voter's window shut before it went")
            elif content:
                store.unrelease(flow, phone, flow.texts.content.index(text) + 1)  # the bit the step set
            continue
        try:
            accord.gateway_for(flow).send(phone, text, sender=flow.sender, validity_period=seconds)
        except SendError as error:
            store.record_failure(flow, phone, error.code, error.message)
            if error.opted_out:
                handle_carrier_stop(store, flow, phone, str(error.code), accord.flows_for(flow.sender))
            if error.unprocessed and request:
                _ask_later(accord, flow, phone, f"consent request held: {error.code}: {error.message}")
            elif error.unprocessed:
                store.unclaim_answer(message_sid, index)  # certainly not sent: a replay of the callback sends it
            else:
                for later in range(index + 1, len(texts)):  # nor the rest: content without its thanks
                    store.claim_answer(message_sid, later)
            return


def _ask_later(accord: Accord, flow: Flow, phone: str, why: str) -> None:
    """Give a START's consent request, certainly not sent, to the workers: its question goes back, and the
    number on a batch of its own, claimed and asked in its window as any (bot/sending.py).

    The question goes back first: a worker quick enough to take the batch before then would find it
    still open, and ask nothing. Redis failing between the two leaves the number new, on no batch.
    """
    store = accord.store
    if not store.step([flow], phone, "release", body=why).changed:
        return
    try:
        enqueue(accord, "requests", flow, [f"{phone}/{store.region(flow, phone)}"])
    except STORE_DOWN:
        log.error("flow %s: the consent request a START asked for was not queued, Redis failing; the number "
                  "goes with its next round", flow.id)
        raise


@bp.route("/status", methods=["GET", "POST"])
def status(secret: str) -> Response:
    """Record how far a sent text got; never move its status backwards; honour OVHcloud's STOP list."""
    accord: Accord = current_app.extensions["accord"]
    values = request.values
    ovh_id, state = values.get("id", ""), STATUSES.get(values.get("dlr", ""))
    if not ovh_id.isdigit() or len(ovh_id) > 20 or state is None:
        return Response("bad callback", status=400, mimetype="text/plain")
    stop_list = state != "delivered" and any(words in values.get("description", "").lower() for words in STOP_LIST)
    try:
        flow_id, phone = accord.store.record_status(sid_of(int(ovh_id)), state, str(OPTED_OUT) if stop_list else "")
        flow = accord.flows.get(flow_id)
        phone = phone or e164(values.get("receiver", ""))
        if stop_list and flow and E164.fullmatch(phone):
            handle_carrier_stop(accord.store, flow, phone, str(OPTED_OUT), accord.flows_for(flow.sender))
    except STORE_DOWN:
        log.exception("store unavailable while recording a status")
        return Response("store unavailable", status=503, mimetype="text/plain")
    return Response(status=204)
