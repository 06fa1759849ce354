"""A phone in the browser for local runs: read what the bot texted a number, answer as that voter.

Answers go through the real webhook, signed like Twilio's, so the whole production path runs.
Registered only with the local outbox gateway: with Twilio configured, /dev/* does not exist.
It shows whole numbers and texts as any voter, without an account, so it answers only clients on
this machine, judged by the socket's own address whatever the server binds; anyone else gets 404.
"""

from __future__ import annotations

import ipaddress
import secrets
from collections.abc import Mapping
from xml.etree import ElementTree

from flask import Blueprint, Response, abort, current_app, jsonify, render_template, request, url_for
from flask_babel import gettext as _
from flask_babel import lazy_gettext as _l
from werkzeug.test import EnvironBuilder, run_wsgi_app

from bot import Accord
from bot.flows import Flow
from bot.phones import E164, PhoneError, normalize
from bot.threads import Held, answered, thread, waiting
from bot.web import i18n, names

bp = Blueprint("devphone", __name__, url_prefix="/dev")
MAX_BODY = 1600
# How each message of the thread came: the bot's texts from the outbox, the voter's, the bot's answers.
HOW = {"sent": _l("sent by the bot"), "texted": _l("texted by the voter"), "answered": _l("the bot's answer")}


def _accord() -> Accord:
    return current_app.extensions["accord"]


def loopback_only() -> None:
    """Answer 404, as if /dev/* did not exist, to any client not on this machine.

    An app-wide hook, run before the CSRF check: a 400 would tell a remote client the route exists.
    """
    if request.blueprint == bp.name and not from_this_machine(request.environ):
        abort(404)


def from_this_machine(environ: Mapping[str, object]) -> bool:
    """Say whether the request's socket peer is a loopback address (127.0.0.0/8, ::1).

    The socket's own address, never X-Forwarded-For: where ProxyFix rewrote REMOTE_ADDR from that
    header, it kept the socket's value under werkzeug.proxy_fix.orig.
    """
    original = environ.get("werkzeug.proxy_fix.orig")
    peer = (original if isinstance(original, Mapping) else environ).get("REMOTE_ADDR")
    try:
        address = ipaddress.ip_address(str(peer or ""))
    except ValueError:  # no address (a unix socket) or a malformed one: not known to be local
        return False
    return (getattr(address, "ipv4_mapped", None) or address).is_loopback  # ::ffff:127.0.0.1 too


@bp.get("/phone")
def phone_page() -> str:
    """Show the phone: pick a number the outbox texted (or type one) and a flow, then chat."""
    accord = _accord()
    numbers = list(dict.fromkeys(message["to"] for message in reversed(accord.store.outbox())))
    return render_template("dev/phone.html", numbers=numbers, flows=list(accord.flows.values()),
                           phone=request.args.get("phone", numbers[0] if numbers else ""),
                           flow_id=request.args.get("flow", ""))


@bp.get("/phone/thread")
def thread_json() -> tuple[Response, int] | Response:
    """Return the conversation between one number and one flow's sender, oldest first."""
    found = _pick(request.args)
    if isinstance(found, str):
        return jsonify(error=found), 400
    phone, flow = found
    store = _accord().store
    state = store.state(flow, phone)
    messages = [{**message, "how": str(HOW.get(message["how"], message["how"]))}
                for message in thread(store, flow, phone)]
    return jsonify(phone=phone, flow=flow.id, sender=flow.sender, state=state, state_name=names.state(state),
                   messages=messages, window=window_note(waiting(store, flow, phone)))


@bp.post("/phone/send")
def send() -> tuple[Response, int]:
    """Text the bot as the voter, through the real signed webhook; return its HTTP status and answers."""
    found = _pick(request.form)
    body = request.form.get("body", "")
    if isinstance(found, str) or not body.strip() or len(body) > MAX_BODY:
        return jsonify(error=found if isinstance(found, str) else _("type a text of 1-%(most)s characters",
                                                                      most=MAX_BODY)), 400
    phone, flow = found
    before = _accord().store.state(flow, phone)
    status, texts = post_inbound(phone, flow.sender, body)
    held = answered(_accord().store, flow, phone, before, body) if status == 200 else None
    return jsonify(status=status, replies=texts, held=held_note(held)), 200 if status == 200 else 502


def post_inbound(phone: str, to: str, body: str) -> tuple[int, list[str]]:
    """Run a Twilio-shaped, correctly signed inbound request through this very app (WSGI, in-process)."""
    accord = _accord()
    params = {"MessageSid": "SM" + secrets.token_hex(16), "AccountSid": "AC" + "0" * 32, "From": phone,
              "To": to, "Body": body, "NumMedia": "0"}
    # The URL the webhook checks the signature against: PUBLIC_URL, else where this request came in.
    path = url_for("sms.inbound")  # with the app's script root, as the webhook rebuilds it
    url = (accord.config.public_url or f"{request.scheme}://{request.host}") + path
    signature = accord.validator.compute_signature(url, params)
    environ = EnvironBuilder(path=path[len(request.script_root):], base_url=request.url_root, method="POST",
                             data=params, headers={"X-Twilio-Signature": signature}).get_environ()
    app_iter, status, _ = run_wsgi_app(current_app.wsgi_app, environ, buffered=True)
    answer = b"".join(app_iter)
    code = int(status.split()[0])
    if code != 200:
        return code, []
    return code, [message.text or "" for message in ElementTree.fromstring(answer).iter("Message")]


def window_note(held: Held | None) -> str:
    """Say that the window is shut for this voter, why, when it opens, and whether a request waits."""
    if held is None:
        return ""
    window = held.window
    reason = names.reason(window.reason)
    note = (_("The sending window is shut (%(reason)s): it opens %(when)s.", reason=reason,
              when=i18n.moment(window.opens_at)) if window.opens_at else
            _("The sending window is shut (%(reason)s) and opens no more before the flow ends.", reason=reason))
    if held.texts:
        note += " " + _("A round queued the consent request: it goes when the window opens.")
    return note


def held_note(held: Held | None) -> str:
    """Name the texts the voter's answer held back, the window being shut (nothing when it was open)."""
    if held is None or not held.texts:
        return ""
    return _("Held back while the window is shut: %(texts)s", texts=" / ".join(f"« {text} »" for text in held.texts))


def _pick(values) -> tuple[str, Flow] | str:  # noqa: ANN001 (request.args or request.form)
    """Read the number and flow a request names; say what is wrong instead, as a string."""
    flows = _accord().flows
    flow_id = values.get("flow") or next(iter(flows))
    if flow_id not in flows:
        return _("no flow %(flow)r", flow=flow_id)
    flow = flows[flow_id]
    raw = values.get("phone", "").strip()
    if E164.fullmatch(raw):  # already E.164: any number the webhook accepts, whatever a round would import
        return raw, flow
    try:
        return normalize(raw), flow
    except PhoneError as error:
        return f"{raw!r}: {error}"
