"""The HTTP edge: signatures, statuses, health, proxies, hostile bodies, racing replies."""

from __future__ import annotations

import dataclasses
import threading

import pytest
import redis
import requests
from flask import session
from werkzeug.datastructures import MultiDict
from werkzeug.serving import make_server

from bot import create_app
from tests.conftest import SMS, answers, new_sid

VOTER = "+33612980001"


@pytest.fixture
def flow(accord):
    return accord.flows["demo"]


def everything(redis_client: redis.Redis) -> dict[bytes, object]:
    """Snapshot every key and its content, to show a request changed nothing."""
    snapshot = {}
    for key in redis_client.scan_iter():
        kind = redis_client.type(key)
        if kind == b"hash":
            snapshot[key] = redis_client.hgetall(key)
        elif kind == b"stream":
            snapshot[key] = redis_client.xrange(key)
        else:
            snapshot[key] = redis_client.dump(key)
    return snapshot


@pytest.mark.parametrize("forge", ["missing", "wrong token", "other body", "other url", "garbage"])
def test_forged_signature_gets_403_and_changes_nothing(sms: SMS, accord, flow, redis_client, forge):
    accord.store.claim(flow, VOTER, window_open=True)
    before = everything(redis_client)
    params = {"MessageSid": new_sid(), "From": VOTER, "To": flow.sender, "Body": "STOP"}
    signature = {
        "missing": "",
        "wrong token": SMS(sms.client, token="not-our-token").validator.compute_signature(
            SMS.URL + "/sms/inbound", params),
        "other body": sms.validator.compute_signature(SMS.URL + "/sms/inbound", {**params, "Body": "oui"}),
        "other url": sms.validator.compute_signature("https://elsewhere.example/sms/inbound", params),
        "garbage": "\x00é" * 40,
    }[forge]
    for path in ("/sms/inbound", "/sms/status"):
        assert sms.post(path, params, signature=signature).status_code == 403
    assert everything(redis_client) == before


def test_a_status_that_arrives_before_the_send_is_recorded_is_kept(sms: SMS, accord, flow):
    sid = new_sid()
    assert sms.status(sid, "delivered", to=VOTER).status_code == 204
    accord.store.record_sent(flow, VOTER, sid, "hello")
    sms.status(sid, "sent", to=VOTER)
    assert accord.store.message_status(sid) == "delivered"


def test_status_never_moves_backwards(sms: SMS, accord, flow):
    sid = new_sid()
    accord.store.record_sent(flow, VOTER, sid, "hello")
    for status in ("sent", "delivered", "sending", "queued", "sent"):
        assert sms.status(sid, status, to=VOTER).status_code == 204
    assert accord.store.message_status(sid) == "delivered"


def test_status_21610_counts_as_an_objection(sms: SMS, accord, flow):
    accord.store.claim(flow, VOTER, window_open=True)
    sid = new_sid()
    accord.store.record_sent(flow, VOTER, sid, flow.texts.consent_request)
    assert sms.status(sid, "undelivered", to=VOTER, error_code="21610").status_code == 204
    assert accord.store.state(flow, VOTER) == "opted_out"
    assert accord.store.is_suppressed(flow, VOTER)
    assert accord.store.claim(flow, VOTER, window_open=True).refused == "suppressed"


def test_healthz_says_whether_redis_answers(client, config, clock):
    assert client.get("/healthz").get_json() == {"redis": "ok"}
    down = create_app(dataclasses.replace(config, redis_url="redis://127.0.0.1:1/0"), clock=clock)
    response = down.test_client().get("/healthz")
    assert (response.status_code, response.get_json()) == (503, {"redis": "unavailable"})


def test_store_down_answers_503_so_twilio_retries(config, clock):
    down = create_app(dataclasses.replace(config, redis_url="redis://127.0.0.1:1/0"), clock=clock)
    response = SMS(down.test_client()).send(VOTER, "oui")
    assert response.status_code == 503


def test_public_url_setting_is_what_signatures_cover(config, clock, redis_client):
    app = create_app(dataclasses.replace(config, public_url="https://bot.example.org"), clock=clock)
    sms = SMS(app.test_client())
    sms.URL = "https://bot.example.org"
    assert sms.send(VOTER, "aide").status_code == 200
    sms.URL = "http://localhost"
    assert sms.send(VOTER, "aide").status_code == 403


def test_behind_a_proxy_the_forwarded_url_is_what_signatures_cover(client):
    params = {"MessageSid": new_sid(), "From": VOTER, "To": "38000", "Body": "info"}
    sms = SMS(client)
    signature = sms.validator.compute_signature("https://bot.example.org/sms/inbound", params)
    headers = {"X-Twilio-Signature": signature, "X-Forwarded-Proto": "https",
               "X-Forwarded-Host": "bot.example.org"}
    assert client.post("/sms/inbound", data=params, headers=headers).status_code == 200


def test_behind_a_proxy_with_a_path_prefix_the_prefix_is_signed_too(client):
    params = {"MessageSid": new_sid(), "From": VOTER, "To": "38000", "Body": "info"}
    signature = SMS(client).validator.compute_signature("https://bot.example.org/accord/sms/inbound", params)
    headers = {"X-Twilio-Signature": signature, "X-Forwarded-Proto": "https",
               "X-Forwarded-Host": "bot.example.org", "X-Forwarded-Prefix": "/accord"}
    assert client.post("/sms/inbound", data=params, headers=headers).status_code == 200


@pytest.mark.parametrize("body", ["", "\x00\x01\x7f", "🗳️" * 600, "a" * 10_000, "\U0010fffd\U0001f600", "oui\r\nnon",
                                  "<Response><Message>x</Message></Response>", "%s{controller}"])
def test_any_text_a_voter_can_send_gets_a_200(sms: SMS, accord, flow, body):
    accord.store.claim(flow, VOTER, window_open=True)
    response = sms.send(VOTER, body)
    assert response.status_code == 200
    assert response.mimetype == "application/xml"
    assert accord.store.verify_ledger(flow.id) is None


def test_invalid_utf8_body_gets_a_200(sms: SMS, accord, flow):
    accord.store.claim(flow, VOTER, window_open=True)
    sid = new_sid()
    raw = f"MessageSid={sid}&From=%2B33612980001&To=38000&Body=oui%FF%FE".encode()
    # Werkzeug keeps undecodable escapes as they came; that is the text the signature covers.
    decoded = {"MessageSid": sid, "From": VOTER, "To": "38000", "Body": "oui%FF%FE"}
    signature = sms.validator.compute_signature(SMS.URL + "/sms/inbound", decoded)
    response = sms.client.post("/sms/inbound", data=raw, content_type="application/x-www-form-urlencoded",
                               headers={"X-Twilio-Signature": signature})
    assert response.status_code == 200
    assert accord.store.state(flow, VOTER) == "clarified"


def test_repeated_parameters_are_signed_and_read_like_twilio(sms: SMS, accord, flow):
    accord.store.claim(flow, VOTER, window_open=True)
    params = MultiDict([("MessageSid", new_sid()), ("From", VOTER), ("To", flow.sender),
                        ("Body", "oui"), ("Body", "stop")])
    response = sms.post("/sms/inbound", params)
    assert response.status_code == 200
    assert accord.store.state(flow, VOTER) == "consented"  # the first value, as Flask reads it


@pytest.mark.parametrize("sender", ["+33612345678\n", "+3361234567٧", "0612345678", "+33 6 12 34 56 78"])
def test_signed_request_from_a_sender_not_in_e164_is_a_400_and_changes_nothing(sms: SMS, redis_client, sender):
    params = {"MessageSid": new_sid(), "From": sender, "To": "38000", "Body": "STOP"}
    assert sms.post("/sms/inbound", params).status_code == 400
    assert everything(redis_client) == {}


@pytest.mark.parametrize("missing", ["From", "MessageSid"])
def test_signed_request_without_sender_or_sid_is_a_400(sms: SMS, missing):
    params = {"MessageSid": new_sid(), "From": VOTER, "To": "38000", "Body": "oui"}
    del params[missing]
    assert sms.post("/sms/inbound", params).status_code == 400


def test_text_to_a_number_no_flow_uses_is_answered_with_silence(sms: SMS, redis_client):
    assert answers(sms.send(VOTER, "oui", to="+33100000000")) == []
    assert everything(redis_client) == {}


def test_stop_to_a_number_no_flow_uses_is_still_honoured_by_every_controller(sms: SMS, accord):
    assert answers(sms.send(VOTER, "Arrêtez de m'écrire", to="38999")) == []
    for flow in accord.flows.values():
        assert accord.store.is_suppressed(flow, VOTER)
        assert accord.store.state(flow, VOTER) == "opted_out"


def test_two_replies_racing_for_one_number_are_applied_one_after_the_other(accord, app, redis_client):
    """Each pair of concurrent texts: the second one sees the state the first one left."""
    flow = accord.flows["demo"]
    voters = [f"+336129800{n:02d}" for n in range(40)]
    for phone in voters:
        accord.store.claim(flow, phone, window_open=True)
    server = make_server("127.0.0.1", 0, app, threaded=True)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    url = f"http://127.0.0.1:{server.server_port}/sms/inbound"
    sms = SMS(app.test_client())

    def post(phone: str, body: str, barrier: threading.Barrier) -> None:
        params = {"MessageSid": new_sid(), "From": phone, "To": flow.sender, "Body": body}
        signature = sms.validator.compute_signature(url, params)
        barrier.wait()
        assert requests.post(url, data=params, headers={"X-Twilio-Signature": signature},
                             timeout=10).status_code == 200

    try:
        for phone in voters:
            barrier = threading.Barrier(2)
            threads = [threading.Thread(target=post, args=(phone, body, barrier)) for body in ("oui", "STOP")]
            for thread in threads:
                thread.start()
            for thread in threads:
                thread.join()
    finally:
        server.shutdown()

    for phone in voters:
        moves = [f["state"].split(">") for _, f in accord.store.ledger(flow.id)
                 if f["phone"] == phone and f["event"].startswith("in:")]
        assert len(moves) == 2
        (first_from, first_to), (second_from, second_to) = moves
        assert first_from == "asked" and second_from == first_to
        assert accord.store.state(flow, phone) == "opted_out"
    assert accord.store.verify_ledger(flow.id) is None


def test_twiml_escapes_what_xml_requires():
    from xml.etree import ElementTree

    from bot.webhook import twiml

    texts = ("Tom & Jerry <3 « oui » 'ok' \"non\"", "")
    root = ElementTree.fromstring(twiml(texts))
    assert root.tag == "Response" and [m.text or "" for m in root.iter("Message")] == list(texts)



def test_the_webhook_opens_no_session_and_the_console_does(app, sms: SMS, accord, flow):
    """Twilio carries no cookie worth reading, so the webhook skips the session; pages keep theirs."""
    for path, opened in (("/sms/inbound", False), ("/sms/status", False), ("/healthz", False),
                         ("/console/login", True)):
        with app.test_request_context(path, method="POST"):
            assert app.session_interface.is_null_session(session) is not opened, path
    accord.store.claim(flow, "+33612345678", window_open=True)
    answer = sms.send("+33612345678", "oui")
    assert answer.status_code == 200 and "Set-Cookie" not in answer.headers
    assert accord.store.state(flow, "+33612345678") == "consented"


def test_a_server_process_freezes_what_it_built_at_startup(config, clock):
    """wsgi.py's app: startup objects leave the collector's way, and the app answers as any other."""
    import gc

    from bot import create_server_app

    try:
        server_app = create_server_app(config, clock=clock)
        assert gc.get_freeze_count() > 10_000
        assert server_app.test_client().get("/healthz").status_code == 200
    finally:
        gc.unfreeze()
