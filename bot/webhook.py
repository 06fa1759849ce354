"""The Twilio-facing HTTP edge: inbound texts, delivery statuses, health."""

from __future__ import annotations

import logging
import re
from collections.abc import Iterable
from functools import lru_cache
from xml.sax.saxutils import escape

import redis
from flask import Blueprint, Request, Response, abort, current_app, jsonify, request

from bot.answering import still_fitting
from bot.conversation import handle_carrier_stop, handle_inbound, handle_unrouted
from bot.phones import E164
from bot.signatures import FormParams

log = logging.getLogger(__name__)
bp = Blueprint("sms", __name__)
MESSAGE_SID = re.compile(r"[A-Z]{2}[0-9a-fA-F]{32}")
UNSUBSCRIBED = "21610"
# Redis away: say so quickly so Twilio's retry (or `reconcile`) brings the text back later.
STORE_DOWN = (redis.ConnectionError, redis.TimeoutError)


def public_url(req: Request, base: str | None) -> str:
    """Return the URL Twilio signed: the configured public base, or what the proxy forwarded."""
    query = req.query_string.decode("latin-1")
    root = base or f"{req.scheme}://{req.host}"  # not host_url: it costs an IRI round trip
    return root + req.script_root + req.path + (f"?{query}" if query else "")


@bp.before_request
def check_signature() -> None:
    """Refuse, with 403 and no change, any request not signed with our auth token."""
    if request.endpoint == "sms.healthz":
        return
    accord = current_app.extensions["accord"]
    signature = request.headers.get("X-Twilio-Signature", "")
    url = public_url(request, accord.config.public_url)
    if not signature or not accord.validator.validate(url, FormParams(request.form), signature):
        log.warning("refused an unsigned or badly signed request to %s", request.path)
        abort(403)


@bp.post("/sms/inbound")
def inbound() -> Response:
    """Answer a voter's text with TwiML, after moving their state."""
    accord = current_app.extensions["accord"]
    form = request.form
    phone, sid = form.get("From", ""), form.get("MessageSid") or form.get("SmsSid", "")
    if not E164.fullmatch(phone) or not MESSAGE_SID.fullmatch(sid):
        return _twiml((), status=400)
    flows = accord.flows_for(form.get("To", ""), form.get("MessagingServiceSid", ""))
    try:
        if flows:
            outcome = handle_inbound(accord.store, flows, phone=phone, body=form.get("Body", ""),
                                     message_sid=sid)
            texts = outcome.texts
            flow = next((f for f in flows if f.id == outcome.flow), None)
            if outcome.replayed and flow is not None:
                # Twilio asking again for an answer it never got, after the voter's window shut: its
                # service texts only (whether the first answer went cannot be known, so nothing is given back).
                texts = still_fitting(accord.store, flow, phone, texts)
            return _twiml(texts)
        log.warning("inbound text to %s, which no flow sends from", form.get("To"))
        # Whoever they meant, an objection is honoured by every controller; no reply, since
        # naming one controller could be naming the wrong one.
        handle_unrouted(accord.store, list(accord.flows.values()), phone=phone,
                        body=form.get("Body", ""), message_sid=sid)
        return _twiml(())
    except STORE_DOWN:
        log.exception("store unavailable; answering 503 so the text is retried")
        return Response("store unavailable", status=503, mimetype="text/plain")


@bp.post("/sms/status")
def status() -> Response:
    """Record how far a sent message got; never move its status backwards."""
    accord = current_app.extensions["accord"]
    form = request.form
    sid, state = form.get("MessageSid", ""), form.get("MessageStatus", "")
    if not MESSAGE_SID.fullmatch(sid) or not state:
        return Response(status=400)
    error = form.get("ErrorCode", "")
    try:
        flow_id, phone = accord.store.record_status(sid, state, error)
        if error == UNSUBSCRIBED:
            flow = accord.flows.get(flow_id) or next(iter(accord.flows_for(form.get("From", ""), "")), None)
            phone = phone or form.get("To", "")
            if flow and E164.fullmatch(phone):
                handle_carrier_stop(accord.store, flow, phone, error, accord.flows_for(flow.sender))
    except STORE_DOWN:
        log.exception("store unavailable while recording a status")
        return Response("store unavailable", status=503, mimetype="text/plain")
    return Response(status=204)


@bp.get("/healthz")
def healthz() -> tuple[Response, int]:
    """Say whether Redis answers."""
    try:
        up = current_app.extensions["accord"].store.ping()
    except STORE_DOWN:
        up = False
    return jsonify(redis="ok" if up else "unavailable"), 200 if up else 503


def _twiml(texts: Iterable[str], status: int = 200) -> Response:
    return Response(twiml(tuple(texts)), status=status, mimetype="application/xml")


@lru_cache(maxsize=256)
def twiml(texts: tuple[str, ...]) -> str:
    """Return the TwiML that sends `texts`; cached, since a flow says few distinct things."""
    messages = "".join(f"<Message>{escape(text)}</Message>" for text in texts)
    return f'<?xml version="1.0" encoding="UTF-8"?><Response>{messages}</Response>'

